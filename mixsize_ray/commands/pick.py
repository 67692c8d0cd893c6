"""`mixsize-ray pick RUN_OR_CHECKPOINT [--max-gflops X] [--max-latency-ms X] [--within POINTS] [--out PT2]`.

Picks the serving size from the run's calibrated accuracy-vs-size curve under the limits, prints the
alternatives, and exports the model fixed to that size (``torch.export``, that size's BN statistics) as a
``.pt2`` that loads with torch alone. The work is :mod:`mixsize_ray.serve.pick`'s.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pick", help="pick the serving size under a FLOPs, latency or accuracy limit and export "
                                    "the model fixed to it (.pt2)")
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT",
                   help="checkpoint folder (holding state.pt), state.pt itself, or a run folder (its newest "
                        "checkpoint_* with a sweep.json)")
    p.add_argument("--max-gflops", type=float, default=None,
                   help="GFLOPs per image at most (1e9 FLOPs, multiply-add = 2, from the sweep); default: no limit")
    p.add_argument("--max-latency-ms", type=float, default=None,
                   help="median forward latency at --latency-batch at most, in ms, measured now on --device; "
                        "default: no limit")
    p.add_argument("--latency-batch", type=int, default=1, choices=(1, 32),
                   help="the batch --max-latency-ms applies to (ms per forward of the whole batch); default: 1")
    p.add_argument("--within", type=float, default=None, metavar="POINTS",
                   help="top-1 at most POINTS percentage points below the best size's (1 = one point, e.g. "
                        "86.7%% -> 85.7%%), and then the CHEAPEST such size (fewest GFLOPs) is picked; "
                        "default: no limit (the most accurate qualifying size is picked)")
    p.add_argument("--sizes", default=None,
                   help="'16,24,32' or 'A:B:STEP': evaluate these sizes now instead of reading sweep.json; "
                        "default: the checkpoint's sweep.json, else the run's sweep sizes evaluated now")
    p.add_argument("--out", default=None,
                   help="the exported .pt2 ('{size}' is replaced by the picked size); its folder must exist; "
                        "default: <checkpoint folder>/serve-{size}.pt2")
    p.add_argument("--no-export", dest="export", action="store_false",
                   help="only pick and print, write no model; default: export")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip scoring the exported file on the run's eval split; default: score it")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed forwards per size and batch (the median is reported); default: 5")
    p.add_argument("--warmup", type=int, default=2, help="untimed forwards before them; default: 2")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads while timing (1 is steadiest on a shared machine); default: torch's "
                        "own setting")
    p.add_argument("--device", default="cpu", help="where latency is measured (cpu, cuda, cuda:1); default: cpu")
    p.add_argument("--json", dest="json_out", default=None, help="write the choice as JSON here; default: none")
    p.add_argument("--register", default=None, metavar="NAME",
                   help="register the model in the MLflow Model Registry as NAME with alias serve-<size> and "
                        "log the choice to the run (needs --tracking-uri or MLFLOW_TRACKING_URI); default: do not")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI for --register (a server or sqlite:///path/mlflow.db); default: "
                        "MLFLOW_TRACKING_URI")
    p.add_argument("--run-id", default=None,
                   help="MLflow run to log the choice to; default: the checkpoint's run, else a new run")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override the saved config (e.g. data.root=/new/path); default: none")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mixsize_ray.commands.common import check_writable
    from mixsize_ray.serve.latency import LatencyPlan
    from mixsize_ray.serve.pick import PickRequest, prepare, run_pick, write_json
    from mixsize_ray.serve.registry import Registration
    from mixsize_ray.serve.selection import Constraint

    registration = None
    if args.register is not None or args.run_id is not None:
        registration = Registration(args.register or "", args.tracking_uri, run_id=args.run_id)
    request = PickRequest(
        args.checkpoint,
        constraint=Constraint(args.max_gflops, args.max_latency_ms, args.within, args.latency_batch),
        latency=LatencyPlan(repeats=args.repeats, warmup=args.warmup, device=args.device,
                            threads=args.threads),
        sizes=args.sizes, out=args.out, export=args.export, verify=args.verify,
        overrides=tuple(args.overrides), registration=registration)
    job = prepare(request)
    outputs = [("--out", job.out_path("0")), ("--json", args.json_out)]
    for field, out in outputs:  # refused before anything is loaded, evaluated or timed
        if out is not None:
            check_writable(field, str(out))
    outcome = run_pick(job)
    if args.json_out:
        print(f"wrote {write_json(outcome, args.json_out)}")
    return 0
