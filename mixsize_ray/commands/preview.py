"""`mixsize-ray loader-preview [CONFIG] [--out PNG]`: a contact sheet of what the loader feeds per size."""

from __future__ import annotations

import argparse

from mixsize_ray.commands.common import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("loader-preview", help="write a PNG contact sheet of batches the loader feeds per size")
    add_config_args(p, required=False)
    p.add_argument("--out", default="runs/loader_preview.png", help="PNG path; default: %(default)s")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mixsize_ray.config import load_config

    cfg = load_config(args.config, args.overrides)  # a bad config is refused before torch loads
    from mixsize_ray.train.preview import write_loader_preview

    print(f"wrote {write_loader_preview(cfg, args.out)}")
    return 0
