"""`mixsize-ray train CONFIG [--set k=v ...] [--smoke]`: MixSize training on Ray Train."""

from __future__ import annotations

import argparse

from mixsize_ray.commands.common import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train with MixSize on Ray Train (local cluster, RAY_ADDRESS or ray.address)")
    add_config_args(p)
    p.add_argument("--smoke", action="store_true",
                   help="shrink data, steps and the sweep for a ~1 minute run; default: off")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mixsize_ray.config import config_from_dict, load_config

    cfg = load_config(args.config, args.overrides)  # a bad config is refused before torch loads
    from mixsize_ray.train.launch import apply_smoke, launch

    if args.smoke:  # smoke shrinks the run, then the user's own --set values win again
        cfg = config_from_dict(apply_smoke(cfg).to_dict(), args.overrides)
    summary = launch(cfg)
    print(f"run folder: {summary.run_dir}")
    if summary.checkpoint:
        print(f"checkpoint: {summary.checkpoint}")
        print(f"size sweep: {summary.sweep_json} (+ sweep.png)")
    keys = ("epoch", "loss", "train_top1", "val_top1", "images_per_s")
    print("final: " + ", ".join(f"{k}={summary.metrics[k]:.4g}" for k in keys if k in summary.metrics))
    return 0
