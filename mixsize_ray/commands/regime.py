"""`mixsize-ray regime CONFIG [--world-size N] [--json]`: the solved (S, B, D) table."""

from __future__ import annotations

import argparse
import json

from mixsize_ray.commands.common import add_config_args
from mixsize_ray.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("regime", help="solve a regime and print its (S, B, D) table")
    add_config_args(p)
    p.add_argument("--world-size", type=int, default=None,
                   help="data-parallel ranks B must divide by; default: the config's ray.num_workers")
    p.add_argument("--json", action="store_true", help="print one JSON object; default: a text table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mixsize_ray.config import load_config
    from mixsize_ray.core.regime import regime_from_config
    from mixsize_ray.data.counts import count_train_images

    cfg = load_config(args.config, args.overrides)
    if args.world_size is not None and args.world_size < 1:
        raise ConfigError("--world-size", "an integer >= 1", args.world_size)
    d = cfg.data  # the images one epoch really holds (an ImageFolder is counted, not assumed to be ImageNet)
    table = regime_from_config(cfg, world_size=args.world_size,
                               num_images=count_train_images(d.name, d.root, d.train_size)).solve()
    print(json.dumps(table.to_json(), indent=2) if args.json else table.format())
    return 0
