"""`mixsize-ray report [--tracking-uri URI] (--experiment NAME | --search NAME | --runs ID ...) --out FILE.html`:
one self-contained HTML page comparing runs (curves, compute, size distributions, training, step times; for a
search also its Pareto front, importances and trials). It opens offline: Plotly's script is inside."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="an offline HTML report comparing runs or a search, from an MLflow store")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow store or server; default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--experiment", default=None, help="every training run of this MLflow experiment")
    which.add_argument("--search", default=None,
                       help="the trials of this search (its name, e.g. quickstart-20261126-041500)")
    which.add_argument("--runs", nargs="+", default=None, metavar="RUN_ID", help="these runs")
    p.add_argument("--search-experiment", default="mixsize-ray",
                   help="the MLflow experiment holding --search; default: %(default)s")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mixsize_ray.commands.common import check_writable
    from mixsize_ray.errors import ConfigError
    from mixsize_ray.report.page import write_report
    from mixsize_ray.report.runs import Selection, select
    from mixsize_ray.tracking.uri import check_reachable, resolve_tracking_uri, sqlite_path

    check_writable("--out", args.out)
    uri = resolve_tracking_uri(args.tracking_uri)
    db = sqlite_path(uri)
    if db is not None and not db.is_file():  # reading a store that is not there would create an empty one
        raise ConfigError("--tracking-uri", "an existing MLflow store", uri)
    check_reachable(uri, 10.0)
    sel = Selection(experiment=args.experiment, search=args.search, run_ids=tuple(args.runs or ()))
    runs, search = select(uri, sel, experiment=args.search_experiment)
    if not runs:
        raise ConfigError("--experiment/--search/--runs", "a selection holding at least one training run",
                          args.experiment or args.search or args.runs)
    title = f"mixsize-ray: {args.search or args.experiment or f'{len(runs)} runs'}"
    path = write_report(runs, search, title, args.out)
    print(f"wrote {path} ({len(runs)} runs{', search ' + search.name if search else ''}); open it in a browser")
    return 0
