"""`mixsize-ray` command line. The parser is built apart from :func:`main`; every flag's help gives its default.

Bad input (a :class:`~mixsize_ray.errors.ConfigError`, or an image file that cannot be decoded) prints one
line ``mixsize-ray: error: ...`` on stderr and exits with code 2 before anything is launched.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mixsize_ray.errors import ConfigError

EXIT_BAD_INPUT = 2

# subcommand modules under mixsize_ray.commands, in --help order
COMMANDS = ("regime", "train", "evaluate", "preview", "demo", "tune", "ui", "mlflow_sync")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixsize-ray", description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"mixsize_ray.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"mixsize-ray: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as e:
        from mixsize_ray.data.datasets import CorruptImageError

        if isinstance(e, CorruptImageError):
            print(f"mixsize-ray: error: {str(e).splitlines()[0]}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise


if __name__ == "__main__":
    sys.exit(main())
