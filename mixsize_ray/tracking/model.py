"""The trained model in MLflow (PyTorch flavour, MLflow 3 ``name=`` API) with its per-size BN statistics.

Two serializations (``tracking.model_format``):

* ``pickle`` (default): the :class:`~mixsize_ray.core.calibration.SizeAwareModel` itself, carrying the
  :class:`BNStatsCache`; ``mlflow.pytorch.load_model`` gives it back, and in eval mode each forward uses
  the statistics of its input size. The package's code travels with the model (``code_paths``).
* ``pt2``: a ``torch.export`` graph (dynamic batch, H and W) of
  :func:`~mixsize_ray.core.size_indexed_bn.size_indexed_model`, whose BN layers pick the statistics of the
  input size in-graph; loads without unpickling code.

Both take float32 ``[N, 3, S, S]`` and return logits ``[N, num_classes]``.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mixsize_ray.core.calibration import BNStatsCache, SizeAwareModel, unwrap

PACKAGE_DIR = Path(__file__).resolve().parents[1]
MODEL_NAME = "model"


@contextlib.contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """Use ``uri`` for MLflow's fluent calls inside (``log_model`` has no URI argument); restores the
    previous setting and MLFLOW_TRACKING_URI afterwards."""
    import mlflow

    old_env = os.environ.get("MLFLOW_TRACKING_URI")
    old = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(old)
        if old_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_env


def pip_requirements() -> list[str]:
    """Pinned requirements written with the model (given explicitly: MLflow's inference would load the
    model in a subprocess)."""
    import mlflow
    import torchvision
    import yaml

    def base(v: str) -> str:
        return v.split("+", 1)[0]

    return [f"torch=={base(torch.__version__)}", f"torchvision=={base(torchvision.__version__)}",
            f"mlflow=={mlflow.__version__}", f"pyyaml=={yaml.__version__}"]


def signature(num_classes: int):
    """Tensor signature: float32 ``[-1, 3, -1, -1]`` in (any batch, any size), ``[-1, num_classes]`` out."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, -1, -1))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, num_classes))]),
    )


def inference_model(model: nn.Module, cache: BNStatsCache, fmt: str = "pickle") -> nn.Module:
    """A CPU, eval-mode copy ready to serialize: SizeAwareModel (``pickle``) or size-indexed (``pt2``)."""
    base = copy.deepcopy(unwrap(model)).cpu().eval()
    cache = BNStatsCache.from_state_dict(cache.state_dict())
    if fmt == "pt2":
        from mixsize_ray.core.size_indexed_bn import size_indexed_model

        return size_indexed_model(base, cache)
    return SizeAwareModel(base, cache).eval()


def _flavor_kwargs(model: nn.Module, fmt: str, example_size: int) -> dict[str, Any]:
    with torch.no_grad():
        num_classes = int(model(torch.zeros(2, 3, example_size, example_size)).shape[-1])
    kwargs: dict[str, Any] = {"signature": signature(num_classes), "pip_requirements": pip_requirements(),
                              "serialization_format": fmt}
    if fmt == "pt2":
        gen = torch.Generator().manual_seed(0)
        kwargs["input_example"] = torch.rand(2, 3, example_size, example_size, generator=gen).numpy()
    else:
        kwargs["code_paths"] = [str(PACKAGE_DIR)]
    return kwargs


def log_model(model: nn.Module, run_id: str, uri: str, *, fmt: str = "pickle", example_size: int = 32,
              registered_model_name: str | None = None, name: str = MODEL_NAME, step: int = 0):
    """Log an inference model (see :func:`inference_model`) to run ``run_id``; optionally register it.

    Returns MLflow's ``ModelInfo`` (``model_uri`` = ``models:/<model_id>``).
    """
    import mlflow.pytorch

    kwargs = _flavor_kwargs(model, fmt, example_size)
    with tracking_uri(uri):
        # MLflow 3 creates the LoggedModel in the ACTIVE experiment, not the run's: make them the same,
        # or the model lands in the Default experiment's artifact folder.
        mlflow.set_experiment(experiment_id=mlflow.MlflowClient(uri).get_run(run_id).info.experiment_id)
        return mlflow.pytorch.log_model(model, name=name, run_id=run_id, step=step,
                                        registered_model_name=registered_model_name, **kwargs)


def save_model(model: nn.Module, path: str | Path, *, fmt: str = "pickle", example_size: int = 32) -> Path:
    """Save the inference model as a local MLflow model folder (the spool's copy when logging failed)."""
    import mlflow.pytorch

    mlflow.pytorch.save_model(model, str(path), **_flavor_kwargs(model, fmt, example_size))
    return Path(path)
