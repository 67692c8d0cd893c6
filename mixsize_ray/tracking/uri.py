"""Where runs go: resolving the tracking URI and checking, before any worker starts, that it answers.

The URI is ``tracking.uri``, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working
directory (MLflow 3's default store). A relative sqlite path is made absolute on the driver, so Ray workers,
whose working directory differs, write to the same database.

Example:
    >>> resolve_tracking_uri("sqlite:///runs.db", cwd="/data")
    'sqlite:////data/runs.db'
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path

from mixsize_ray.atomic import creatable
from mixsize_ray.errors import ConfigError, one_line

DEFAULT_URI = "sqlite:///mlflow.db"
_SQLITE = "sqlite:///"
# MLflow 3 stores; the plain file store (a bare path or file:) is not offered
TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks")


def check_scheme(uri: str, field: str = "tracking.uri") -> None:
    """One-line ConfigError unless ``uri`` names a supported store (``postgresql+psycopg2://`` counts as
    postgresql; ``databricks`` alone is allowed)."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else uri
    if scheme not in TRACKING_SCHEMES:
        raise ConfigError(field, f"null or a URI with a scheme in {list(TRACKING_SCHEMES)} "
                          "(e.g. sqlite:///mlflow.db or http://127.0.0.1:5000)", uri)


def resolve_tracking_uri(uri: str | None = None, cwd: str | Path | None = None) -> str:
    """``uri`` or MLFLOW_TRACKING_URI or the default, with a relative sqlite path made absolute."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri.startswith(_SQLITE):
        path = uri[len(_SQLITE):]
        if path and path != ":memory:" and not path.startswith("/"):
            uri = _SQLITE + str((Path(cwd or os.getcwd()) / path).resolve())
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for any other scheme)."""
    if not uri.startswith(_SQLITE):
        return None
    return Path(uri[len(_SQLITE):].split("?", 1)[0])


def ensure_store(uri: str) -> None:
    """Make a sqlite store's folder (once the run is really starting; :func:`check_reachable` only checks)."""
    db = sqlite_path(uri)
    if db is not None and db.name != ":memory:":
        db.parent.mkdir(parents=True, exist_ok=True)


def artifact_location(uri: str) -> str | None:
    """For a sqlite store, new experiments keep artifacts beside the database (``mlartifacts/``), not in
    whatever working directory created them; None (the store's default) for any other store."""
    db = sqlite_path(uri)
    return (db.parent / "mlartifacts").as_uri() if db is not None else None


@contextlib.contextmanager
def request_limits(retries: int, timeout_s: float) -> Iterator[None]:
    """Bound MLflow's own HTTP retries and timeout for the calls inside (MLflow's defaults retry for
    minutes); the previous environment is restored afterwards."""
    values = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(max(0, retries)),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(timeout_s))),
    }
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_reachable(uri: str, timeout_s: float = 10.0) -> None:
    """Raise a one-line :class:`ConfigError` naming ``uri`` if the tracking store cannot be used.

    A sqlite store needs a writable folder for its file; any other store must answer an MLflow API call
    (``search_experiments``) within ``timeout_s`` seconds, without retries.
    """
    check_scheme(uri, "tracking.uri" if not os.environ.get("MLFLOW_TRACKING_URI") else
                 "tracking.uri (or MLFLOW_TRACKING_URI)")
    db = sqlite_path(uri)
    if db is not None:
        why = creatable(db.parent)  # checked, not created: a refused run leaves no folder behind
        if why is None and db.exists() and not os.access(db, os.W_OK):
            why = "the file is not writable"
        if why is not None:
            raise ConfigError("tracking.uri", "a sqlite file in a writable folder", uri, hint=why)
        return
    from mlflow import MlflowClient

    try:
        with request_limits(0, timeout_s):
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - any failure here means "cannot track to this URI"
        reason = one_line(e, last=True)
        raise ConfigError("tracking.uri", "a reachable MLflow tracking server", uri, hint=reason) from None
