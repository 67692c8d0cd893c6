"""`mixsize-ray demo`: the main job on the embedded dataset, end to end, on a laptop CPU.

Solves and prints the CIFAR S(28) D+ regime, writes a contact sheet of what the loader feeds per size,
trains it with 2 Ray Train workers (a short run), and prints the accuracy-vs-size curve (calibrated and
not) with where every result went.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "search_spaces" / "cifar_s28_dplus.yaml"
DEMO_SETS = [
    "ray.num_workers=2", "train.name=demo", "train.epochs=3", "train.max_steps_per_epoch=40",
    "data.train_size=4096", "data.test_size=512", "data.num_workers=0", "train.calibrate_batches=10",
    "train.sweep_sizes=[16,20,24,28,32,40,48]", "optim.lr=0.05",
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job on the embedded dataset: regime, loader preview, train, curve")
    p.add_argument("--out", default="runs", help="folder for all results; default: %(default)s")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a demo config value; default: none")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mixsize_ray.config import load_config
    from mixsize_ray.train.launch import launch
    from mixsize_ray.train.preview import write_loader_preview

    cfg = load_config(DEMO_CONFIG, [*DEMO_SETS, f"train.output_dir={args.out}", *args.overrides])
    print("== 1/2 what the loader feeds at each size (D views per image)")
    print(f"wrote {write_loader_preview(cfg, Path(args.out) / 'loader_preview.png')}")
    print("== 2/2 the regime (constant S^2*B*D per step), training on Ray Train, then the size sweep")
    summary = launch(cfg)
    if summary.sweep_json:
        import json

        doc = json.loads(Path(summary.sweep_json).read_text())
        print(f"{'size':>5} {'top1':>7} {'top1_calibrated':>16} {'GFLOPs':>8}")
        for r in doc["sizes"]:
            print(f"{r['size']:>5} {r['top1']:>7.3f} {r['top1_calibrated']:>16.3f} {r['gflops']:>8.4f}")
        print(f"curve: {summary.sweep_json} and sweep.png beside it; checkpoints in {summary.run_dir}")
    return 0
