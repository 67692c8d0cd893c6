"""Logging calls as records: sent to MLflow, or kept in a local spool when the server cannot be reached.

Every call the tracker makes is one JSON-able record (``kind``: metrics, params, tags, artifact, table,
dict, text, model, status; ``run_id``; ``uri``; the payload). :func:`send` delivers one record with an
:class:`MlflowClient`. When delivery fails, :class:`Spool` appends the record to ``spool.jsonl`` in a
folder beside the run's checkpoints (files and models are copied under ``files/``), so nothing is lost
silently; :func:`replay` (``mixsize-ray mlflow-sync``) sends what is there later and keeps only what
still fails.

Example:
    >>> import tempfile
    >>> spool = Spool(tempfile.mkdtemp())
    >>> spool.add({"kind": "metrics", "run_id": "r", "metrics": [["loss", 1.0, 0, 0]]})
    >>> len(spool), spool.records()[0]["kind"]
    (1, 'metrics')
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from mixsize_ray.tracking.params import PARAM_BATCH

SPOOL_FILE = "spool.jsonl"


def now_ms() -> int:
    return int(time.time() * 1000)


class Spool:
    """Append-only JSONL of records that could not be sent, in ``directory``."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    @property
    def path(self) -> Path:
        return self.directory / SPOOL_FILE

    def add(self, record: dict[str, Any]) -> None:
        """Append one record (flushed and fsynced: a crash right after keeps it)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def keep(self, src: str | Path) -> str:
        """Copy a file or folder into the spool (the original may be temporary); return the copy's path."""
        src = Path(src)
        dst = self.directory / "files" / uuid.uuid4().hex[:12] / src.name  # the name is the artifact's name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)
        return str(dst)

    def new_folder(self, name: str) -> Path:
        """A fresh folder under the spool for something to be saved into (e.g. a model)."""
        p = self.directory / "files" / f"{uuid.uuid4().hex[:12]}-{name}"
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def records(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def __len__(self) -> int:
        return len(self.records())

    def prune(self, sent: list[dict[str, Any]], left: list[dict[str, Any]]) -> None:
        """Remove the copies under ``files/`` that records in ``sent`` delivered and no record in ``left``
        still needs; remove ``files/`` itself once it is empty. Copies no sent record names are left alone
        (a record added meanwhile by a live run may need them)."""
        files = (self.directory / "files").resolve()

        def entries(records: list[dict[str, Any]]) -> set[Path]:
            out = set()
            for r in records:
                path = Path(r["path"]).resolve() if r.get("path") else None
                if path is not None and path.is_relative_to(files) and path != files:
                    out.add(files / path.relative_to(files).parts[0])
            return out

        for entry in entries(sent) - entries(left):
            shutil.rmtree(entry, ignore_errors=True)
        if files.is_dir() and not any(files.iterdir()):
            files.rmdir()

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace the spool's content with ``records`` (atomically); remove the file when empty."""
        if not records:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records), encoding="utf-8")
        os.replace(tmp, self.path)


def _chunks(items: list[Any], n: int = PARAM_BATCH) -> list[list[Any]]:
    return [items[i:i + n] for i in range(0, len(items), n)] or [[]]


def send(client: Any, uri: str, record: dict[str, Any]) -> None:
    """Deliver one record to run ``record["run_id"]``; raises whatever MLflow raises."""
    from mlflow.entities import Metric, Param, RunTag

    kind, run_id = record["kind"], record["run_id"]
    if kind == "metrics":
        ms = [Metric(k, float(v), int(ts), int(step)) for k, v, step, ts in record["metrics"]]
        for chunk in _chunks(ms, 1000):
            client.log_batch(run_id, metrics=chunk)
    elif kind == "params":
        for chunk in _chunks([Param(k, str(v)) for k, v in record["params"].items()]):
            client.log_batch(run_id, params=chunk)
    elif kind == "tags":
        client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in record["tags"].items()])
    elif kind == "artifact":
        client.log_artifact(run_id, record["path"], record.get("artifact_path"))
    elif kind == "table":  # log_table appends to an existing file: log it once per run
        if all(f.path != record["artifact_file"] for f in client.list_artifacts(run_id)):
            client.log_table(run_id, record["data"], record["artifact_file"])
    elif kind == "dict":
        client.log_dict(run_id, record["data"], record["artifact_file"])
    elif kind == "text":
        client.log_text(run_id, record["text"], record["artifact_file"])
    elif kind == "status":
        client.set_terminated(run_id, record["status"], end_time=record.get("time"))
    elif kind == "model":
        _send_saved_model(client, uri, record)
    else:
        raise ValueError(f"unknown spool record kind {kind!r}")


def _send_saved_model(client: Any, uri: str, record: dict[str, Any]) -> None:
    """Log a model folder saved by ``mlflow.pytorch.save_model`` as a LoggedModel output of the run."""
    from mlflow.entities import LoggedModelOutput

    run = client.get_run(record["run_id"])
    model = client.create_logged_model(run.info.experiment_id, name=record.get("name", "model"),
                                       source_run_id=record["run_id"])
    client.log_model_artifacts(model.model_id, record["path"])
    client.finalize_logged_model(model.model_id, "READY")
    client.log_outputs(record["run_id"], [LoggedModelOutput(model.model_id, int(record.get("step", 0)))])
    if record.get("registered_model_name"):
        import mlflow

        from mixsize_ray.tracking.model import tracking_uri

        with tracking_uri(uri):
            mlflow.register_model(f"models:/{model.model_id}", record["registered_model_name"])


def replay(directory: str | Path, uri: str | None = None, client: Any = None) -> tuple[int, int]:
    """Send every spooled record in order (to ``uri``, default each record's own ``uri``); stop at the
    first failure and keep it and everything after it. Returns (sent, remaining)."""
    from mlflow import MlflowClient

    spool = Spool(directory)
    records = spool.records()
    clients: dict[str, Any] = {}
    left: list[dict[str, Any]] = []
    sent = 0
    for i, rec in enumerate(records):
        target = uri or rec["uri"]
        try:
            if client is None and target not in clients:
                clients[target] = MlflowClient(tracking_uri=target)
            send(client or clients[target], target, rec)
            sent += 1
        except Exception:  # noqa: BLE001 - still unreachable: keep this record and everything after it
            left = records[i:]
            break
    spool.rewrite(left)
    spool.prune(records[:sent], left)
    return sent, len(left)
