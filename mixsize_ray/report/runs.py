"""What a report shows, read from an MLflow store: runs (with their curves and training history) and, for a
search, its parent run's trials table and importances.

Example:
    >>> r = RunData("0" * 32, "demo", "FINISHED", params={"regime.mode": "B+", "regime.p_16": "0.5",
    ...             "regime.p_32": "0.5"}, curve={keys.TOP1_CALIBRATED_VS_SIZE: {16: 0.6, 32: 0.9}})
    >>> r.label, r.size_shares, r.curve_of(keys.TOP1_CALIBRATED_VS_SIZE)
    ('demo (B+)', {16: 0.5, 32: 0.5}, {16: 0.6, 32: 0.9})
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from mixsize_ray.errors import ConfigError, one_line
from mixsize_ray.tracking import keys
from mixsize_ray.tracking.params import SEARCH_TAG

CURVE_KEYS = (keys.TOP1_VS_SIZE, keys.TOP1_CALIBRATED_VS_SIZE, keys.GFLOPS_VS_SIZE)
EPOCH_KEYS = (keys.LOSS, keys.TRAIN_TOP1, keys.VAL_TOP1, keys.LR, keys.GRAD_NORM, keys.GRAD_NORM_SMOOTHED,
              keys.REALISED_BUDGET, keys.IMAGES_PER_S)


@dataclass
class RunData:
    """One training run as the report draws it: curves keyed by MLflow key, ``{size: value}``; epoch
    histories ``{key: [(epoch, value)]}``; ``step_time`` ``{size: seconds}`` of the last epoch."""

    run_id: str
    name: str
    status: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    curve: dict[str, dict[int, float]] = field(default_factory=dict)
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    step_time: dict[int, float] = field(default_factory=dict)
    regime: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def serving_size(self) -> int | None:
        """The size ``mixsize-ray pick --register`` chose for this run (its ``serve.size`` tag), if any."""
        v = self.tags.get(keys.SERVE_SIZE_TAG, "")
        return int(v) if v.isdigit() else None

    @property
    def label(self) -> str:
        mode = self.params.get("regime.mode")
        return f"{self.name} ({mode})" if mode else self.name

    @property
    def size_shares(self) -> dict[int, float]:
        """``{size: p}`` from the ``regime.p_<S>`` params."""
        out = {int(k.rsplit("_", 1)[1]): float(v) for k, v in self.params.items()
               if k.startswith("regime.p_") and k.rsplit("_", 1)[1].isdigit()}
        return dict(sorted(out.items()))

    def curve_of(self, key: str) -> dict[int, float]:
        return dict(sorted(self.curve.get(key, {}).items()))


@dataclass
class SearchData:
    """A search's parent run: its name, trials table rows and importances per objective."""

    run_id: str
    name: str
    trials: list[dict[str, str]] = field(default_factory=list)
    importances: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """Which runs a report covers: every training run of ``experiment``, the trials of ``search`` (the
    parent run's name), or the given ``run_ids``."""

    experiment: str | None = None
    search: str | None = None
    run_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        given = [x for x in (self.experiment, self.search, self.run_ids) if x]
        if len(given) != 1:
            raise ConfigError("--experiment/--search/--runs", "exactly one of them", f"{len(given)} given")


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _artifact(client: Any, run_id: str, path: str) -> str | None:
    """A small text artifact of a run (no progress bar on the console); None when the run has none."""
    import os
    import tempfile

    key, old = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ[key] = "false"
    try:
        with tempfile.TemporaryDirectory() as d:
            local = client.download_artifacts(run_id, path, d)
            with open(local, encoding="utf-8") as f:
                return f.read()
    except Exception:  # noqa: BLE001 - not logged (an older run, or still running)
        return None
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def load_run(client: Any, run: Any) -> RunData:
    """One run's data (metric histories are fetched for the keys the run has)."""
    rid = run.info.run_id
    have = run.data.metrics
    data = RunData(rid, run.info.run_name or rid[:8], run.info.status, params=dict(run.data.params),
                   metrics=dict(have), tags=dict(run.data.tags))
    for key in CURVE_KEYS:
        if key in have:
            data.curve[key] = {int(m.step): m.value for m in client.get_metric_history(rid, key)}
    for key in EPOCH_KEYS:
        if key in have:
            data.history[key] = sorted((int(m.step), m.value) for m in client.get_metric_history(rid, key))
    data.step_time = {keys.size_of_step_time(k): v for k, v in have.items() if keys.size_of_step_time(k) is not None}
    text = _artifact(client, rid, "regime.json")
    data.regime = json.loads(text) if text else None
    return data


def _experiment_id(client: Any, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        names = [e.name for e in client.search_experiments(max_results=20)]
        raise ConfigError("--experiment", f"an experiment of the store (one of {names})", name)
    return exp.experiment_id


def select(uri: str, sel: Selection, experiment: str = "mixsize-ray") -> tuple[list[RunData], SearchData | None]:
    """The runs of ``sel`` (training runs only, oldest first) and, for a search, its parent's data."""
    client = _client(uri)
    try:
        if sel.run_ids:
            runs = [client.get_run(r) for r in sel.run_ids]
            return [load_run(client, r) for r in runs], None
        exp_id = _experiment_id(client, sel.experiment or experiment)
        if sel.experiment:
            runs = client.search_runs([exp_id], max_results=5000, order_by=["attributes.start_time ASC"])
            runs = [r for r in runs if SEARCH_TAG not in r.data.tags]  # training runs, not search parents
            return [load_run(client, r) for r in runs], None
        parents = client.search_runs([exp_id], f"tags.`{SEARCH_TAG}` = '{sel.search}'")
        if not parents:
            raise ConfigError("--search", f"a search in experiment '{sel.experiment or experiment}'", sel.search)
        parent = parents[0]
        children = client.search_runs([exp_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                      max_results=5000, order_by=["attributes.start_time ASC"])
        search = SearchData(parent.info.run_id, sel.search)
        text = _artifact(client, parent.info.run_id, "trials.csv")
        search.trials = list(csv.DictReader(io.StringIO(text))) if text else []
        text = _artifact(client, parent.info.run_id, "importances.json")
        search.importances = json.loads(text) if text else {}
        trained = [r for r in children if r.data.metrics]  # infeasible trials have a child run without metrics
        return [load_run(client, r) for r in trained], search
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - a store that does not answer or refuses: one line
        raise ConfigError("--tracking-uri", "an MLflow store holding the runs", uri, hint=one_line(e)) from None
