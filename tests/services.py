"""Debian tools the dashboard tests run for real (.ci/run installs them): missing ones skip the test on a
developer machine and fail it under CI=true, where .ci/run must have installed them."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str, package: str) -> str:
    """The path of executable ``name`` (Debian package ``package``)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed (apt-get install {package}; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
