"""Headless Chromium for the page tests (Debian's chromium + chromium-driver; .ci/run installs them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def chromium(tmp_path: Path):
    """A headless Chromium WebDriver (the test is skipped where Chromium or Selenium is missing)."""
    if not (shutil.which("chromium") and Path("/usr/bin/chromedriver").exists()):
        pytest.skip("chromium / chromium-driver not installed (.ci/run installs them with apt-get)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the dev extra) not installed")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1600,1100", f"--user-data-dir={tmp_path / 'chrome'}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
