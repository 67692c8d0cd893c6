"""`mixsize-ray eval CHECKPOINT [--sizes LIST|A:B:STEP] [--calibrate-batches N] [--json OUT] [--plot PNG]`.

Runs through :func:`mixsize_ray.train.launch.launch` with an :class:`~mixsize_ray.train.evaluate.Evaluation`
job: in this process, or on one worker of the Ray cluster the run names (``--set ray.address=...`` or
RAY_ADDRESS, as under ``ray job submit``), with the run's resources.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="accuracy vs image size of a checkpoint, with and without BN calibration")
    p.add_argument("checkpoint", help="checkpoint folder (holding state.pt) or state.pt itself")
    p.add_argument("--sizes", default=None,
                   help="'16,24,32' or 'A:B:STEP' (inclusive); default: the run's train.sweep_sizes, else "
                        "16..64 step 4 for 32-px-style data and S0+32m (m=-6..6) for ImageNet-style data")
    p.add_argument("--calibrate-batches", type=int, default=None,
                   help="training batches per size for BN calibration, recalibrating every size; default: "
                        "reuse the checkpoint's per-size BN statistics, calibrate the rest with the run's "
                        "train.calibrate_batches")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override the saved config (e.g. data.root=/new/path); default: none")
    p.add_argument("--json", dest="json_out", default=None, help="write the curve JSON here; default: none")
    p.add_argument("--plot", dest="plot_out", default=None, help="write the curve PNG here; default: none")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mixsize_ray.commands.common import check_writable
    from mixsize_ray.train.evaluate import Evaluation, checkpoint_config
    from mixsize_ray.train.launch import launch

    for field, out in (("--json", args.json_out), ("--plot", args.plot_out)):  # refused before the sweep runs
        if out is not None:
            check_writable(field, out)
    job = Evaluation(args.checkpoint, sizes=args.sizes, calibrate_batches=args.calibrate_batches)
    result = launch(checkpoint_config(args.checkpoint, args.overrides), job=job).sweep
    print(f"{'size':>5} {'top1':>7} {'top1_cal':>8} {'top5':>7} {'top5_cal':>8} {'GFLOPs':>8}")
    for r in result.to_dict()["sizes"]:
        cal1 = "-" if r["top1_calibrated"] is None else f"{r['top1_calibrated']:.4f}"
        cal5 = "-" if r["top5_calibrated"] is None else f"{r['top5_calibrated']:.4f}"
        print(f"{r['size']:>5} {r['top1']:>7.4f} {cal1:>8} {r['top5']:>7.4f} {cal5:>8} {r['gflops']:>8.4f}")
    if args.json_out:
        result.to_json(args.json_out)
        print(f"wrote {args.json_out}")
    if args.plot_out:
        result.plot(args.plot_out)
        print(f"wrote {args.plot_out}")
    return 0
