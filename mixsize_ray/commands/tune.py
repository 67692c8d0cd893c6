"""`mixsize-ray tune SPACE [--num-samples N] [--resume] [--smoke] [--out DIR] [--set k=v]`: regime search with
Ray Tune + Optuna (schema of SPACE: search_spaces/SEARCH_SPACES.md)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="search size distributions, modes and hyper-parameters (Ray Tune + Optuna)")
    p.add_argument("space", help="search-space YAML (see search_spaces/SEARCH_SPACES.md)")
    p.add_argument("--num-samples", type=int, default=None,
                   help="trials in the search; default: the space's search.num_samples (4 with --smoke)")
    p.add_argument("--resume", action="store_true",
                   help="continue the newest interrupted search of this space (same study); default: off")
    p.add_argument("--smoke", action="store_true",
                   help="a minutes-long search: tiny data, 1 epoch of 4 steps, 4 trials, 2 at a time; default: off")
    p.add_argument("--out", default=None, help="folder for searches; default: the space's search.output_dir")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a value of the space's fixed training config; default: none")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mixsize_ray.tune.search import load_search_space, run_search
    from mixsize_ray.tune.summary import print_summary

    spec = load_search_space(args.space, args.overrides, smoke=args.smoke, num_samples=args.num_samples,
                             output_dir=args.out)
    summary = run_search(spec, resume=args.resume, num_samples_given=args.num_samples is not None)
    if spec.search.pbt is not None:
        from mixsize_ray.tune.pbt_search import pbt_text

        print(pbt_text(summary), flush=True)
        return 0
    print_summary(spec, summary)
    return 0
