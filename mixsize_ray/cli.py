"""`mixsize-ray` command line. The parser is built apart from :func:`main`; every flag's help gives its default.

Bad input (a :class:`~mixsize_ray.errors.ConfigError`) prints one line ``mixsize-ray: error: ...`` on
stderr and exits with code 2 before anything is launched.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from mixsize_ray.errors import ConfigError

EXIT_BAD_INPUT = 2


def _add_config_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("config", nargs=None if required else "?", default=None,
                   help="YAML config (sections data, model, regime, optim, train, ray, tracking)"
                   + ("" if required else "; default: built-in defaults"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (YAML syntax), repeatable; default: none")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixsize-ray", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("regime", help="solve a regime and print its (S, B, D) table")
    _add_config_args(p)
    p.add_argument("--world-size", type=int, default=None,
                   help="data-parallel ranks B must divide by; default: the config's ray.num_workers")
    p.add_argument("--json", action="store_true", help="print one JSON object; default: a text table")
    p.set_defaults(func=cmd_regime)

    p = sub.add_parser("train", help="train with MixSize on Ray Train (local cluster, RAY_ADDRESS or ray.address)")
    _add_config_args(p)
    p.add_argument("--smoke", action="store_true",
                   help="shrink data, steps and the sweep for a ~1 minute run; default: off")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("loader-preview", help="write a PNG contact sheet of batches the loader feeds per size")
    _add_config_args(p, required=False)
    p.add_argument("--out", default="runs/loader_preview.png", help="PNG path; default: %(default)s")
    p.set_defaults(func=cmd_loader_preview)
    return parser


def cmd_regime(args: argparse.Namespace) -> int:
    from mixsize_ray.config import load_config
    from mixsize_ray.core.regime import regime_from_config

    cfg = load_config(args.config, args.overrides)
    if args.world_size is not None and args.world_size < 1:
        raise ConfigError("--world-size", "an integer >= 1", args.world_size)
    table = regime_from_config(cfg, world_size=args.world_size).solve()
    if args.json:
        print(json.dumps(table.to_json(), indent=2))
    else:
        print(table.format())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from mixsize_ray.config import config_from_dict, load_config
    from mixsize_ray.train.launch import apply_smoke, run_training

    cfg = load_config(args.config, args.overrides)
    if args.smoke:  # smoke shrinks the run, then the user's own --set values win again
        cfg = config_from_dict(apply_smoke(cfg).to_dict(), args.overrides)
    summary = run_training(cfg)
    print(f"run folder: {summary.run_dir}")
    if summary.checkpoint:
        print(f"checkpoint: {summary.checkpoint}")
        print(f"size sweep: {summary.sweep_json} (+ sweep.png)")
    keys = ("epoch", "loss", "train_top1", "val_top1", "images_per_s")
    print("final: " + ", ".join(f"{k}={summary.metrics[k]:.4g}" for k in keys if k in summary.metrics))
    return 0


def cmd_loader_preview(args: argparse.Namespace) -> int:
    from mixsize_ray.config import load_config
    from mixsize_ray.data.preview import write_loader_preview

    cfg = load_config(args.config, args.overrides)
    path = write_loader_preview(cfg, args.out)
    print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as e:
        print(f"mixsize-ray: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
