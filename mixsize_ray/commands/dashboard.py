"""`mixsize-ray dashboard optuna SEARCH_DIR [--port P] [--host 127.0.0.1]`: Optuna's own dashboard
(optuna-dashboard) on a search's study, served by this process on loopback until Ctrl-C or SIGTERM.

``dashboard`` takes one subcommand per dashboard, so others (Grafana, ...) can join ``optuna``.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="serve a dashboard on loopback (optuna: a search's Optuna study)")
    kinds = p.add_subparsers(dest="dashboard", required=True, metavar="{optuna}")
    o = kinds.add_parser("optuna", help="optuna-dashboard on the study of a `mixsize-ray tune` search folder")
    o.add_argument("search_dir", metavar="SEARCH_DIR",
                   help="a search folder holding search.json, e.g. runs/tune/quickstart-<time>")
    o.add_argument("--port", type=int, default=8080, help="port to listen on; default: %(default)s")
    o.add_argument("--host", default="127.0.0.1",
                   help="interface to bind; default: %(default)s (loopback only)")
    o.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mixsize_ray.errors import ConfigError
    from mixsize_ray.tune.dashboard import bind, dashboard_url, load_target, serve, shown

    if not 0 < args.port < 65536:
        raise ConfigError("--port", "an integer in 1..65535", args.port)
    target = load_target(args.search_dir)
    try:
        server = bind(target, host=args.host, port=args.port)
        print(f"Optuna dashboard: {dashboard_url(target, server)}  (study {target.study_name}, storage "
              f"{shown(target.storage_url)}; Ctrl-C stops it)", flush=True)
        serve(server)
    except KeyboardInterrupt:
        return 0
    finally:
        target.storage.remove_session()
    return 0
