"""`mixsize-ray mlflow-sync SPOOL_DIR [--uri URI]`: send what a run kept locally while MLflow was away."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mlflow-sync", help="send a run's spooled MLflow records (kept while the server was away)")
    p.add_argument("spool", help="spool folder (runs/<train.name>/mlflow_spool) or its spool.jsonl")
    p.add_argument("--uri", default=None, help="tracking URI to send to; default: the one each record names")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mixsize_ray.errors import ConfigError
    from mixsize_ray.tracking.spool import SPOOL_FILE, Spool, replay

    folder = Path(args.spool)
    if folder.name == SPOOL_FILE:
        folder = folder.parent
    if not Spool(folder).path.is_file():
        raise ConfigError("spool", f"a folder holding {SPOOL_FILE}", str(args.spool))
    sent, left = replay(folder, uri=args.uri)
    print(f"sent {sent} records; {left} left in {Spool(folder).path if left else folder}")
    return 0 if left == 0 else 1
