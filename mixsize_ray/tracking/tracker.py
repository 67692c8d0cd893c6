"""The rank-0 logger of one MLflow run inside a Ray Train worker.

:class:`RunTracker` is called at the start, at each epoch end and at the end of training. Each call is
retried a bounded number of times (``tracking.retries``, waits 1 s, 2 s, ...; MLflow's own HTTP retries
are switched off inside, each request bounded by ``tracking.timeout_s``). A call that still fails goes to
the local :class:`~mixsize_ray.tracking.spool.Spool` and the tracker turns *offline*: later calls make
one attempt, after first trying to send the spool, so training never waits long and, once the server is
back, the spool drains in order. :meth:`RunTracker.close` reports what is left in the spool.

Logging is idempotent per (run, key, step): an epoch, a curve or a model the run already holds (a worker
killed after logging but before its checkpoint was reported retries that epoch) is not logged again, and a
logged model left PENDING by a kill mid-upload is deleted before the model is logged.

Example (a server that is not there; the record lands in the spool):
    >>> import tempfile
    >>> t = RunTracker("http://127.0.0.1:9", "0" * 32, tempfile.mkdtemp(), retries=1, wait_s=0,
    ...                timeout_s=1, log=lambda m: None)
    >>> t.log_epoch({"epoch": 0, "loss": 2.3})
    False
    >>> t.spooled, t.pending()
    (1, 1)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixsize_ray.errors import one_line
from mixsize_ray.tracking.curve import curve_metrics, epoch_metrics
from mixsize_ray.tracking.keys import LOSS, TOP1_VS_SIZE
from mixsize_ray.tracking.spool import Spool, now_ms, replay, send
from mixsize_ray.tracking.uri import request_limits

EPOCH_KEY = LOSS  # every epoch logs it: its steps are the epochs the run holds
CURVE_KEY = TOP1_VS_SIZE


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {one_line(e, last=True)}" if str(e).strip() else type(e).__name__


class RunTracker:
    """Log to MLflow run ``run_id`` at ``uri``; keep what cannot be sent in ``spool_dir``.

    Args:
        uri: tracking URI (absolute sqlite path or server URL).
        run_id: the MLflow run (created or reattached by the driver).
        spool_dir: folder for the spool (beside the run's checkpoints).
        retries: attempts per call while online (>= 1).
        timeout_s: bound of each HTTP request, seconds.
        wait_s: first wait between attempts, doubled each time.
        log: printer for the few status lines (unreachable, back, leftovers).
    """

    def __init__(self, uri: str, run_id: str, spool_dir: str | Path, *, retries: int = 3,
                 timeout_s: float = 10.0, wait_s: float = 1.0, log: Callable[[str], None] = print,
                 client: Any = None):
        if client is None:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=uri)
        self.uri, self.run_id, self.client = uri, run_id, client
        self.spool = Spool(spool_dir)
        self.retries, self.timeout_s, self.wait_s = max(1, retries), timeout_s, wait_s
        self.log = log
        self.offline = len(self.spool) > 0  # leftovers of an earlier attempt go out first
        self.spooled = 0
        self.last_error: str | None = None
        self.closed = False
        self.info: Any = None  # the driver's TrackingRun (model options), set by worker_tracker
        self._logged: dict[str, set[int]] = {}

    # ---- delivery --------------------------------------------------------------------------------------
    def _attempts(self, fn: Callable[[], Any]) -> bool:
        n = self.retries
        if self.offline:
            if not self.flush():
                return False
            n = 1
        for i in range(n):
            try:
                with request_limits(0, self.timeout_s):
                    fn()
                return True
            except Exception as e:  # noqa: BLE001 - any failure to log is retried, then spooled
                self.last_error = _reason(e)
                if i + 1 < n:
                    time.sleep(self.wait_s * 2**i)
        return False

    def _spooled(self, record: dict[str, Any]) -> bool:
        self.spool.add(record)
        self.spooled += 1
        if not self.offline:
            self.offline = True
            self.log(f"MLflow: cannot log to {self.uri} ({self.last_error}); training goes on, records are "
                     f"kept in {self.spool.path}")
        return False

    def deliver(self, record: dict[str, Any], keep: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                ) -> bool:
        """Send one record (retried); on failure spool it (``keep`` first copies its files). True if sent."""
        record = {"run_id": self.run_id, "uri": self.uri, "time": now_ms(), **record}
        if self._attempts(lambda: send(self.client, self.uri, record)):
            return True
        return self._spooled(keep(record) if keep else record)

    def flush(self) -> bool:
        """Try to send the spool (one attempt per record, in order). True when it is empty afterwards."""
        if not self.spool.path.is_file():
            self.offline = False
            return True
        try:
            with request_limits(0, self.timeout_s):
                sent, left = replay(self.spool.directory, client=self.client)
        except Exception as e:  # noqa: BLE001 - a broken spool must not stop training
            self.last_error = _reason(e)
            return False
        if left == 0:
            self.offline = False
            self.log(f"MLflow: {self.uri} reachable again; sent {sent} spooled records")
        return left == 0

    def logged_steps(self, key: str) -> set[int]:
        """Steps of ``key`` the run already holds (asked once, then kept up to date); empty when the store
        cannot be asked (then nothing is skipped)."""
        if key not in self._logged:
            if self.offline:  # no call while the store is away (one try per record, no storm): skip nothing
                return set()
            try:
                with request_limits(0, self.timeout_s):
                    self._logged[key] = {m.step for m in self.client.get_metric_history(self.run_id, key)}
            except Exception as e:  # noqa: BLE001 - offline: log as usual, the spool keeps it
                self.last_error = _reason(e)
                self._logged[key] = set()
        return self._logged[key]

    def pending(self) -> int:
        """Records in the spool now (this run's and any earlier attempt's)."""
        return len(self.spool)

    # ---- what training logs ----------------------------------------------------------------------------
    def log_start(self, table_json: dict[str, Any], config_yaml: str) -> None:
        """The solved regime (JSON, and as a table), and the resolved config."""
        from mixsize_ray.tracking.params import regime_table_columns

        self.deliver({"kind": "dict", "data": table_json, "artifact_file": "regime.json"})
        self.deliver({"kind": "table", "data": regime_table_columns(table_json),
                      "artifact_file": "regime_table.json"})
        self.deliver({"kind": "text", "text": config_yaml, "artifact_file": "config.yaml"})

    def log_epoch(self, metrics: dict[str, Any]) -> bool:
        """Per-epoch metrics with MLflow step = epoch (see :func:`epoch_metrics`)."""
        step, ts = int(metrics["epoch"]), now_ms()
        if step in self.logged_steps(EPOCH_KEY):  # a retried epoch: the run holds it already
            self.log(f"MLflow: epoch {step} is already in run {self.run_id}; not logged again")
            return True
        rows = [[k, v, step, ts] for k, v in epoch_metrics(metrics).items()]
        ok = self.deliver({"kind": "metrics", "metrics": rows})
        self._logged.setdefault(EPOCH_KEY, set()).add(step)
        return ok

    def log_sweep(self, doc: dict[str, Any], files: list[str | Path], epoch: int) -> bool:
        """The accuracy-vs-size curve (step = size) and per-size keys, then the sweep's JSON/PNG files."""
        ts = now_ms()
        ok = True
        if not self.logged_steps(CURVE_KEY):  # files below are overwritten in place: idempotent already
            ok = self.deliver({"kind": "metrics", "metrics": [[k, v, s, ts] for k, v, s in curve_metrics(doc, epoch)]})
            self._logged.setdefault(CURVE_KEY, set()).update(int(r["size"]) for r in doc["sizes"])
        for f in files:
            ok &= self.deliver({"kind": "artifact", "path": str(f), "artifact_path": None},
                               keep=lambda r: {**r, "path": self.spool.keep(r["path"])})
        return ok

    def log_model(self, model: Any, cache: Any, *, fmt: str = "pickle", example_size: int = 32,
                  registered_model_name: str | None = None, step: int = 0) -> bool:
        """The model with its per-size BN statistics (see :mod:`mixsize_ray.tracking.model`)."""
        from mixsize_ray.tracking.model import MODEL_NAME, inference_model, save_model
        from mixsize_ray.tracking.model import log_model as log_to_mlflow

        if self._model_logged():
            self.log(f"MLflow: run {self.run_id} holds its model already; not logged again")
            return True
        inference = inference_model(model, cache, fmt)

        def call() -> None:
            log_to_mlflow(inference, self.run_id, self.uri, fmt=fmt, example_size=example_size,
                         registered_model_name=registered_model_name, step=step)

        if self._attempts(call):
            return True
        folder = self.spool.new_folder(MODEL_NAME)
        save_model(inference, folder, fmt=fmt, example_size=example_size)
        return self._spooled({"kind": "model", "run_id": self.run_id, "uri": self.uri, "time": now_ms(),
                              "path": str(folder), "name": MODEL_NAME, "step": step,
                              "registered_model_name": registered_model_name})

    def _model_logged(self) -> bool:
        """Whether the run has a READY logged model; PENDING ones (a kill mid-upload) are deleted."""
        from mixsize_ray.tracking.model import MODEL_NAME

        try:
            with request_limits(0, self.timeout_s):
                exp = self.client.get_run(self.run_id).info.experiment_id
                models = self.client.search_logged_models([exp], filter_string=f"source_run_id = '{self.run_id}'")
                ready = False
                for m in models:
                    if m.name != MODEL_NAME:
                        continue
                    if str(m.status).endswith("READY"):
                        ready = True
                    elif str(m.status).endswith("PENDING"):
                        self.client.delete_logged_model(m.model_id)
                return ready
        except Exception as e:  # noqa: BLE001 - cannot ask: log it (at worst a second copy)
            self.last_error = _reason(e)
            return False

    def close(self) -> int:
        """Last attempt to send the spool; report what stays there. Returns the number of records left."""
        self.closed = True
        if self.offline:
            self.flush()
        left = self.pending()
        if left:
            self.log(f"MLflow: {left} records could not be sent to {self.uri} and are kept in {self.spool.path}; "
                     f"send them later with `mixsize-ray mlflow-sync {self.spool.directory}`")
        return left
