"""One MLflow run per training run: decided once by the driver, used by rank 0, closed by the driver.

The driver (:func:`start_run`) resolves the experiment and either reattaches to ``resume_run_id`` (the
run id the latest checkpoint's manifest names; the caller reads it) or creates a run with tags and params
(nested under ``tracking.parent_run_id`` when set). A fresh start whose earlier attempt was killed before
its first checkpoint continues that attempt's run (:func:`interrupted_attempt`), so a run folder never
gets a second MLflow run. It hands the workers a small
:class:`TrackingRun` (plain data in ``train_loop_config``); rank 0 logs to exactly that run
(:func:`worker_tracker`) and never creates, deletes or re-decides runs. Ray Train retries reuse it, so a
retried run never makes a second MLflow run. On reattach only params the run does not have yet are
logged; a value that changed (``train.epochs`` when extending a run) cannot be logged again and is
recorded as the tag ``changed.<param>`` instead. :func:`finish_run` sets the terminal status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mixsize_ray.errors import ConfigError, one_line
from mixsize_ray.tracking.params import run_params, run_tags
from mixsize_ray.tracking.spool import Spool, now_ms, send
from mixsize_ray.tracking.uri import artifact_location, ensure_store, request_limits, resolve_tracking_uri

SPOOL_DIR = "mlflow_spool"


@dataclass
class TrackingRun:
    """What a worker needs to log to the run (plain data, travels in ``train_loop_config["tracking"]``)."""

    uri: str
    experiment_id: str
    run_id: str
    created: bool
    spool_dir: str
    retries: int = 3
    timeout_s: float = 10.0
    log_model: bool = True
    model_format: str = "pickle"
    register_model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrackingRun:
        return cls(**d)

    def url(self) -> str | None:
        """The run's page in the MLflow UI when the URI is a server."""
        if not self.uri.startswith(("http://", "https://")):
            return None
        return f"{self.uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"


def spool_dir(storage: str, name: str) -> str:
    """``<run folder>/mlflow_spool`` for local storage; a per-user folder when storage is remote."""
    if "://" in storage:
        return str(Path.home() / ".mixsize-ray" / SPOOL_DIR / name)
    return str(Path(storage) / name / SPOOL_DIR)


def experiment_id(client: Any, name: str, uri: str) -> str:
    """Get or create the experiment ``name`` (a concurrent creator is tolerated)."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location(uri))
        except Exception:  # noqa: BLE001 - someone created it meanwhile
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage != "active":
        raise ConfigError("tracking.experiment", "an active experiment (this one is deleted: restore it "
                          "or pick another name)", name)
    return exp.experiment_id


def _sync_params(client: Any, run: Any, params: dict[str, str], log: Callable[[str], None]) -> None:
    have = run.data.params
    new = {k: v for k, v in params.items() if k not in have}
    changed = {k: v for k, v in params.items() if k in have and have[k] != v}
    if new:
        send(client, "", {"kind": "params", "run_id": run.info.run_id, "params": new})
    if changed:
        tags = {f"changed.{k}": f"{have[k]} -> {v}" for k, v in changed.items()}
        send(client, "", {"kind": "tags", "run_id": run.info.run_id, "tags": tags})
        log(f"MLflow: resumed run keeps its first param values; changed: {', '.join(sorted(changed))} "
            "(recorded as changed.* tags)")


def interrupted_attempt(client: Any, experiment_id: str, run_dir: str, params: dict[str, str]) -> Any | None:
    """The newest run an interrupted attempt of this run folder left (its driver was killed before the first
    checkpoint, so no checkpoint names it): not FINISHED, tagged with the same ``run_dir``, with the same
    params. A fresh start continues it instead of making a second run of the same name. Other unfinished
    leftovers of the folder are deleted; one with other params is only marked KILLED if still RUNNING."""
    if "'" in run_dir:
        return None
    runs = client.search_runs([experiment_id], f"tags.run_dir = '{run_dir}'", order_by=["attributes.start_time DESC"])
    found = None
    for r in (r for r in runs if r.info.status != "FINISHED"):
        same = all(params.get(k) == v for k, v in r.data.params.items() if k in params)
        if same and found is None:
            found = r
            continue
        if r.info.status == "RUNNING":
            client.set_terminated(r.info.run_id, status="KILLED")
        if same:
            client.delete_run(r.info.run_id)
    return found


DRIVER_TAG = "mixsize.driver"  # host:pid of the process that opened (or last reattached) the run


def driver_id() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def close_orphans(client: Any, experiment_id: str) -> list[str]:
    """Runs still RUNNING whose driver (``mixsize.driver`` = host:pid) was this host and is gone (SIGKILL,
    OOM, a lost terminal) are marked KILLED, so a dead driver's run does not stay RUNNING forever. Runs
    from other hosts are left alone (their liveness is unknown here). Returns the run ids closed."""
    import os

    host = driver_id().split(":")[0]
    if "'" in host:
        return []
    closed = []
    for r in client.search_runs([experiment_id], f"attributes.status = 'RUNNING' and tags.`{DRIVER_TAG}` LIKE "
                                                 f"'{host}:%'"):
        pid = r.data.tags[DRIVER_TAG].rsplit(":", 1)[-1]
        try:
            os.kill(int(pid), 0)
            continue  # alive
        except ProcessLookupError:
            pass
        except (ValueError, PermissionError):
            continue
        client.set_terminated(r.info.run_id, status="KILLED")
        closed.append(r.info.run_id)
    return closed


def start_run(cfg: Any, *, storage: str, resume_run_id: str | None = None,
              log: Callable[[str], None] = print) -> TrackingRun:
    """Create the run for ``cfg``, or reattach to ``resume_run_id`` (the checkpoint's run) if the store still
    has it; log tags and params. Errors become one-line ConfigErrors."""
    from mlflow import MlflowClient

    t = cfg.tracking
    uri = resolve_tracking_uri(t.uri)
    run_dir = f"{storage.rstrip('/')}/{cfg.train.name}"
    try:
        ensure_store(uri)
        with request_limits(1, t.timeout_s):
            client = MlflowClient(tracking_uri=uri)
            exp_id = experiment_id(client, t.experiment, uri)
            for rid in close_orphans(client, exp_id):
                log(f"MLflow: run {rid} had lost its driver; marked KILLED")
            run = None
            old_id = resume_run_id
            if old_id:
                try:
                    run = client.get_run(old_id)
                except Exception:  # noqa: BLE001 - gone from the store: start a new one
                    run = None
                if run is None or run.info.lifecycle_stage != "active":
                    log(f"MLflow: run {old_id} of the checkpoint is missing or deleted; creating a new run")
                    run = None
            params = run_params(cfg)
            if run is None and not old_id:
                run = interrupted_attempt(client, exp_id, run_dir, params)
                if run is not None:
                    log(f"MLflow: continuing run {run.info.run_id} of an attempt stopped before its first "
                        "checkpoint")
            created = run is None
            if run is None:
                run = client.create_run(exp_id, run_name=t.run_name or cfg.train.name,
                                        tags={**run_tags(cfg, run_dir=run_dir), DRIVER_TAG: driver_id()})
                send(client, uri, {"kind": "params", "run_id": run.info.run_id, "params": params})
            else:
                client.update_run(run.info.run_id, status="RUNNING")
                client.set_tag(run.info.run_id, DRIVER_TAG, driver_id())
                _sync_params(client, run, params, log)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - the store is there (preflight) but refuses: say which
        reason = one_line(e, last=True)
        raise ConfigError("tracking.uri", "an MLflow tracking store that accepts runs", uri, hint=reason) from None
    info = TrackingRun(uri=uri, experiment_id=exp_id, run_id=run.info.run_id, created=created,
                       spool_dir=spool_dir(storage, cfg.train.name), retries=t.retries, timeout_s=t.timeout_s,
                       log_model=t.log_model, model_format=t.model_format, register_model=t.register_model)
    verb = "created" if created else "reattached to"
    log(f"MLflow: {verb} run {info.run_id} in experiment '{t.experiment}' at {uri}"
        + (f" ({info.url()})" if info.url() else ""))
    return info


def finish_run(info: TrackingRun, status: str, log: Callable[[str], None] = print) -> int:
    """Set the run's terminal status (spooled if the server is away); report the spool. Returns the
    number of records in the spool."""
    from mlflow import MlflowClient

    record = {"kind": "status", "run_id": info.run_id, "uri": info.uri, "status": status, "time": now_ms()}
    spool = Spool(info.spool_dir)
    try:
        with request_limits(1, info.timeout_s):
            send(MlflowClient(tracking_uri=info.uri), info.uri, record)
        where = info.url() or f"{info.uri} (browse: mixsize-ray ui --backend-store-uri {info.uri})"
        log(f"MLflow: run {record['run_id']} {status}: {where}")
    except Exception:  # noqa: BLE001 - keep it with the other unsent records
        spool.add(record)
    left = len(spool) if Path(info.spool_dir).is_dir() else 0
    if left:
        log(f"MLflow: WARNING {left} records were not sent to {info.uri}; they are kept in {spool.path} "
            f"(send them with `mixsize-ray mlflow-sync {info.spool_dir}`)")
    return left


def worker_tracker(info: dict[str, Any], log: Callable[[str], None]):
    """Rank 0's :class:`RunTracker` for the run the driver decided (``info``: :meth:`TrackingRun.to_dict`)."""
    from mixsize_ray.tracking.tracker import RunTracker

    run = TrackingRun.from_dict(info)
    tracker = RunTracker(run.uri, run.run_id, run.spool_dir, retries=run.retries, timeout_s=run.timeout_s, log=log)
    tracker.info = run
    return tracker
