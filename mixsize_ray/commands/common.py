"""Arguments shared by subcommands."""

from __future__ import annotations

import argparse


def add_config_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("config", nargs=None if required else "?", default=None,
                   help="YAML config (sections data, model, regime, optim, train, ray, tracking)"
                   + ("" if required else "; default: built-in defaults"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (YAML syntax), repeatable; default: none")


def check_writable(field: str, path: str) -> None:
    """An output file's folder must exist and be writable (checked without creating anything)."""
    import os
    from pathlib import Path

    from mixsize_ray.errors import ConfigError

    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ConfigError(field, "a file in an existing, writable folder", path)
