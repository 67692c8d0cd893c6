"""The MLflow parent run of a search: one per experiment, re-opened by id on ``--resume``.

Each trial's training run logs itself (``mixsize_ray.tracking``) as a nested child of this run through
``tracking.parent_run_id``; trials that never train (infeasible) get a small child here, so the parent
lists every trial. The parent holds the search-space YAML, the study's identity, and at the end the trial
table, ``best.yaml``, the plots, the parameter importances and the best objective values.

Example:
    >>> pr = ParentRun.open("sqlite:////tmp/mlflow.db", "mixsize-ray", "demo-20240101-000000")  # doctest: +SKIP
    >>> pr.run_id  # doctest: +SKIP
    '3f2a...'
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mixsize_ray.errors import ConfigError, one_line
from mixsize_ray.tracking.params import SEARCH_TAG

TRIAL_TAG = "mixsize.trial_number"


class ParentRun:
    """A thin wrapper over ``MlflowClient`` for the search's parent run."""

    def __init__(self, client: Any, run_id: str, experiment_id: str):
        self.client, self.run_id, self.experiment_id = client, run_id, experiment_id

    @classmethod
    def open(cls, uri: str, experiment: str, name: str, run_id: str | None = None,
             tags: dict[str, str] | None = None) -> ParentRun:
        """Re-open ``run_id`` if given, else create a run ``name`` in ``experiment`` (created if missing)."""
        from mlflow import MlflowClient
        from mlflow.entities import RunStatus

        from mixsize_ray.tracking.session import experiment_id
        from mixsize_ray.tracking.uri import ensure_store

        client = MlflowClient(tracking_uri=uri)
        try:
            ensure_store(uri)
            if run_id:
                run = client.get_run(run_id)
                if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
                    client.update_run(run_id, status="RUNNING")
                return cls(client, run_id, run.info.experiment_id)
            exp_id = experiment_id(client, experiment, uri)
            run = client.create_run(exp_id, run_name=name, tags={SEARCH_TAG: name, **(tags or {})})
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 - the store cannot be used: bad input, before any trial
            msg = one_line(e)
            raise ConfigError("tracking.uri", "an MLflow store the search can write its parent run to", uri,
                              hint=msg) from None
        return cls(client, run.info.run_id, exp_id)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        have = self.client.get_run(self.run_id).data.params
        new = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in have]
        for i in range(0, len(new), 100):
            self.client.log_batch(self.run_id, params=new[i:i + 100])

    def log_metrics(self, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            if v is not None and math.isfinite(v):
                self.client.log_metric(self.run_id, k, float(v))

    def log_artifacts(self, paths: list[Path]) -> None:
        for p in paths:
            if Path(p).is_file():
                self.client.log_artifact(self.run_id, str(p))

    def children(self) -> list[Any]:
        """Active nested runs of this parent (one per trial once a search is done)."""
        return self.client.search_runs([self.experiment_id], f"tags.mlflow.parentRunId = '{self.run_id}'",
                                       max_results=10000)

    def log_infeasible_child(self, number: int, params: dict[str, Any], reason: str) -> None:
        """A child run for a trial that never trained (idempotent: skipped if one exists)."""
        name = f"trial_{number:04d}"
        if any(r.data.tags.get("train.name") == name for r in self.children()):
            return
        run = self.client.create_run(self.experiment_id, run_name=name, tags={
            "mlflow.parentRunId": self.run_id, "train.name": name, TRIAL_TAG: str(number),
            "infeasible_reason": reason[:5000]})
        self.log_params_to(run.info.run_id, params)
        self.client.set_terminated(run.info.run_id, status="KILLED")

    def log_params_to(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i:i + 100])

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)
