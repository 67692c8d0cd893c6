"""The picked model in the MLflow Model Registry, with the alias ``serve-<size>``, and the choice logged to the run.

:func:`register_choice` logs the fixed-size model with MLflow's PyTorch flavour in the ``pt2`` format (MLflow
runs ``torch.export`` itself, on the same fixed-size model :mod:`~mixsize_ray.serve.export` writes; signature
float32 ``[-1, 3, S, S]`` -> ``[-1, K]``), registers it under ``Registration.name``, points the alias
``serve-<size>`` at the new version, and records the choice on the run: tags ``serve.size``,
``serve.top1``, ``serve.gflops``, ``serve.latency_ms_b<batch>``, ``serve.constraint``, ``serve.device``, and
the whole document as the artifact ``serve/pick-<size>.json``. Tags, not params: a later pick under another
limit may choose another size, and MLflow params cannot change.

The run is ``Registration.run_id``, else the checkpoint's MLflow run (its ``manifest.json``) when the store
at ``tracking_uri`` has it, else a new run in experiment ``Registration.experiment``.

Load the registered model back with ``mlflow.pytorch.load_model("models:/<name>@serve-<size>")``.

Example:
    >>> Registration("shapes-resnet20", "sqlite:///mlflow.db").alias(32)
    'serve-32'
    >>> Registration("", "sqlite:///mlflow.db")
    Traceback (most recent call last):
    ...
    mixsize_ray.errors.ConfigError: --register: expected a registered model name (letters, digits, '-', '_', '.'), got ''
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from torch import nn

from mixsize_ray.core.calibration import BNStatsCache
from mixsize_ray.errors import ConfigError
from mixsize_ray.tracking.keys import SERVE_SIZE_TAG

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Registration:
    """Where and under which name to register the picked model.

    Attributes:
        name: registered model name.
        tracking_uri: MLflow tracking URI (a server, or ``sqlite:///path/mlflow.db``: the registry needs a
            database store, not a plain folder); default MLFLOW_TRACKING_URI. A new experiment on a sqlite
            store keeps its artifacts beside the database (``mlartifacts/``).
        run_id: the run to log to; default the checkpoint's run, else a new one.
        experiment: experiment of a new run (default ``mixsize-ray-serve``).
    """

    name: str
    tracking_uri: str | None
    run_id: str | None = None
    experiment: str = "mixsize-ray-serve"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError("--register", "a registered model name (letters, digits, '-', '_', '.')", self.name)
        import os

        from mixsize_ray.tracking.uri import check_scheme, resolve_tracking_uri

        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise ConfigError("--tracking-uri", "an MLflow tracking URI with a model registry (a server or "
                              "sqlite:///...; or MLFLOW_TRACKING_URI) to --register", self.tracking_uri)
        check_scheme(uri, "--tracking-uri")
        object.__setattr__(self, "tracking_uri", resolve_tracking_uri(uri))  # a relative sqlite path made absolute

    def alias(self, size: int) -> str:
        return f"serve-{size}"


def _signature(size: int, num_classes: int):
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, size, size))]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, num_classes))]))


def _run_id(reg: Registration, doc: dict[str, Any], client) -> str:
    """The run to log to (rules in the module doc)."""
    from pathlib import Path

    candidates = [reg.run_id]
    manifest = Path(doc["checkpoint"]) / "manifest.json"
    if manifest.is_file():
        import json

        candidates.append(json.loads(manifest.read_text()).get("mlflow_run_id"))
    for run_id in (c for c in candidates if c):
        try:
            return client.get_run(run_id).info.run_id
        except Exception:  # noqa: BLE001 - not in this store: try the next, else a new run
            if run_id == reg.run_id:
                raise ConfigError("--run-id", f"a run in {reg.tracking_uri}", run_id) from None
    exp = client.get_experiment_by_name(reg.experiment)
    if exp is not None:
        exp_id = exp.experiment_id
    else:
        from mixsize_ray.tracking.uri import artifact_location

        exp_id = client.create_experiment(reg.experiment, artifact_location=artifact_location(reg.tracking_uri))
    run = client.create_run(exp_id, tags={"mlflow.runName": f"pick-{doc['size']}", "checkpoint": doc["checkpoint"]})
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def register_choice(reg: Registration, doc: dict[str, Any], model: nn.Module, cache: BNStatsCache | None
                    ) -> dict[str, Any]:
    """Log, register and alias the model of ``doc["size"]`` (``doc``: the pick's document) and record the
    choice on the run; return ``{"name", "version", "alias", "run_id", "model_uri"}``."""
    import mlflow
    import mlflow.pytorch
    import torch

    from mixsize_ray.serve.export import fixed_size_model
    from mixsize_ray.tracking.model import pip_requirements, tracking_uri

    size = int(doc["size"])
    fixed = fixed_size_model(model, cache, size)
    example = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        num_classes = int(fixed(example).shape[-1])
    client = mlflow.MlflowClient(reg.tracking_uri)
    run_id = _run_id(reg, doc, client)
    with tracking_uri(reg.tracking_uri):
        mlflow.set_experiment(experiment_id=client.get_run(run_id).info.experiment_id)
        info = mlflow.pytorch.log_model(fixed, name=reg.alias(size), run_id=run_id, serialization_format="pt2",
                                        input_example=example.numpy(), signature=_signature(size, num_classes),
                                        pip_requirements=pip_requirements(), registered_model_name=reg.name)
    version = str(info.registered_model_version)
    client.set_registered_model_alias(reg.name, reg.alias(size), version)
    tags = {SERVE_SIZE_TAG: size, "serve.top1": doc["top1"], "serve.gflops": doc["gflops"],
            "serve.constraint": doc["constraint_text"], "serve.device": doc["device"],
            **{f"serve.latency_ms_b{b}": ms for b, ms in doc["latency_ms"].items()}}
    for key, value in tags.items():
        client.set_tag(run_id, key, str(value))
    client.log_dict(run_id, {**doc, "registered": {"name": reg.name, "version": version}},
                    f"serve/pick-{size}.json")
    return {"name": reg.name, "version": version, "alias": reg.alias(size), "run_id": run_id,
            "model_uri": f"models:/{reg.name}@{reg.alias(size)}"}
