"""Data: what a run trains and evaluates on, as normalised tensors at any image size.

Owns: the generated shapes dataset (``shapes``), CIFAR / ImageFolder by name (``datasets``), the per-size
transforms and the normalisation constants (``transforms``), JPEG decoding at reduced scale where it is free
(``jpeg_draft``), the one mixed-size training loader and the BN calibration batches (``loader``), the preset
that builds a run's three loaders (``presets``) and the contact sheet of what the loader feeds
(``contact_sheet``).

May import: torch, torchvision, PIL, numpy, ``mixsize_ray.core``, ``mixsize_ray.errors``,
``mixsize_ray.atomic``. Never ``config``, ``models``, ``tracking``, ``train`` or ``tune``.
"""

import importlib
from typing import Any

_HOME = {
    "DATASETS": "datasets", "build_dataset": "datasets", "dataset_info": "datasets", "normalization": "datasets",
    "Batch": "loader", "CalibrationBatches": "loader", "CalibrationDraw": "loader", "LoaderWorkers": "loader",
    "MixSizeBatchSampler": "loader", "SizedViewDataset": "loader", "build_loader": "loader",
    "mixsize_collate": "loader", "CalibrationSource": "presets", "DataPreset": "presets",
    "SHAPE_CLASSES": "shapes", "ShapesDataset": "shapes", "generate_shapes": "shapes", "STYLES": "transforms",
    "size_transform": "transforms", "count_train_images": "counts",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """The package's names, each imported from its module on first use (PEP 562), so that a torch-free
    submodule (``counts``) can be imported without loading torch and torchvision."""
    if name not in _HOME:
        raise AttributeError(f"module 'mixsize_ray.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mixsize_ray.data.{_HOME[name]}"), name)
