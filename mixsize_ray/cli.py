"""`mixsize-ray` command line. The parser is built apart from :func:`main`; every flag's help gives its default.

Bad input (a :class:`~mixsize_ray.errors.ConfigError`, or an image file that cannot be decoded) prints one
line ``mixsize-ray: error: ...`` on stderr and exits with code 2 before anything is launched.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mixsize_ray.errors import ConfigError, RunFailed

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1
EXIT_INTERRUPTED = 130

# subcommand modules under mixsize_ray.commands, in --help order
COMMANDS = ("regime", "train", "evaluate", "pick", "preview", "demo", "tune", "report", "ui", "dashboard", "mlflow_sync")


class OneLineParser(argparse.ArgumentParser):
    """argparse with a one-line error (argparse's own prints the whole usage block first); subcommand
    parsers are made of the same class.

    Example:
        >>> import contextlib, io
        >>> err = io.StringIO()
        >>> p = OneLineParser(prog="mixsize-ray regime")
        >>> _ = p.add_argument("--world-size", type=int)
        >>> with contextlib.redirect_stderr(err):
        ...     try:
        ...         p.parse_args(["--world-size", "abc"])
        ...     except SystemExit as e:
        ...         print(e.code)
        2
        >>> err.getvalue()
        "mixsize-ray regime: error: argument --world-size: invalid int value: 'abc' (see --help)\\n"
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="mixsize-ray", description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"mixsize_ray.commands.{name}").register(sub)
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends like Ctrl-C: runs marked KILLED, Ray and servers stopped


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
        # Ctrl-C stops the command even when its parent ignored SIGINT (a background job of a script, `&`):
        # an ignored SIGINT is inherited, and Python then never raises KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("mixsize-ray: interrupted (a re-run of the same command resumes)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ConfigError as e:
        print(f"mixsize-ray: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunFailed as e:  # the run started and failed: one line, the details are in the run's logs
        print(f"mixsize-ray: error: {e}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except ValueError as e:
        from mixsize_ray.data.datasets import CorruptImageError

        if isinstance(e, CorruptImageError):
            print(f"mixsize-ray: error: {str(e).splitlines()[0]}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise


if __name__ == "__main__":
    sys.exit(main())
