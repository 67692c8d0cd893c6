"""`mixsize-ray ui [CONFIG] [--port P] [--host 127.0.0.1] [--backend-store-uri URI]`: the MLflow UI on the
runs' store (``tracking.uri`` of the config, else MLFLOW_TRACKING_URI, else ./mlflow.db), bound to loopback."""

from __future__ import annotations

import argparse

from mixsize_ray.commands.common import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="start `mlflow server` (UI + API) on the tracking store and print its address")
    add_config_args(p, required=False)
    p.add_argument("--port", type=int, default=5000, help="port to listen on; default: %(default)s")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind; default: %(default)s (loopback only)")
    p.add_argument("--backend-store-uri", default=None,
                   help="MLflow store, e.g. sqlite:///mlflow.db; default: the config's tracking.uri, else "
                        "MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory")
    p.add_argument("--artifacts-destination", default=None,
                   help="where artifacts uploaded through the server go; default: mlartifacts/ beside a sqlite "
                        "database (where training runs keep theirs), else MLflow's ./mlartifacts")
    p.add_argument("--workers", type=int, default=1, help="server worker processes; default: %(default)s")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mixsize_ray.config import load_config
    from mixsize_ray.errors import ConfigError
    from mixsize_ray.tracking.server import start_server, stop_server, wait_healthy
    from mixsize_ray.tracking.uri import resolve_tracking_uri, sqlite_path

    if args.backend_store_uri is not None:
        uri = resolve_tracking_uri(load_config(None, [f"tracking.uri={args.backend_store_uri}"]).tracking.uri)
    else:
        uri = resolve_tracking_uri(load_config(args.config, args.overrides).tracking.uri)
    if uri.startswith(("http://", "https://")):
        raise ConfigError("--backend-store-uri", "a database store (the configured URI is already a server: "
                          "open it in a browser)", uri)
    if not 0 < args.port < 65536:
        raise ConfigError("--port", "an integer in 1..65535", args.port)
    if args.workers < 1:
        raise ConfigError("--workers", ">= 1", args.workers)
    artifacts = args.artifacts_destination
    if artifacts is None and sqlite_path(uri) is not None:
        artifacts = str(sqlite_path(uri).parent / "mlartifacts")
    proc = start_server(uri, host=args.host, port=args.port, workers=args.workers, artifacts_destination=artifacts)
    url = f"http://{args.host}:{args.port}"
    try:
        wait_healthy(url, timeout_s=120, proc=proc)
        print(f"MLflow UI: {url}  (store {uri}; Ctrl-C stops it)", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_server(proc)
