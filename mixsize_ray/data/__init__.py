"""Data: what a run trains and evaluates on, as normalised tensors at any image size.

Owns: the generated shapes dataset (``shapes``), CIFAR / ImageFolder by name (``datasets``), the per-size
transforms and the normalisation constants (``transforms``), the one mixed-size training loader and the BN
calibration batches (``loader``), the preset that builds a run's three loaders (``presets``) and the contact
sheet of what the loader feeds (``contact_sheet``).

May import: torch, torchvision, PIL, numpy, ``mixsize_ray.core``, ``mixsize_ray.errors``,
``mixsize_ray.atomic``. Never ``config``, ``models``, ``tracking``, ``train`` or ``tune``.
"""

from mixsize_ray.data.datasets import DATASETS, build_dataset, dataset_info, normalization
from mixsize_ray.data.loader import (
    Batch,
    CalibrationBatches,
    CalibrationDraw,
    LoaderWorkers,
    MixSizeBatchSampler,
    SizedViewDataset,
    build_loader,
    mixsize_collate,
)
from mixsize_ray.data.presets import CalibrationSource, DataPreset
from mixsize_ray.data.shapes import SHAPE_CLASSES, ShapesDataset, generate_shapes
from mixsize_ray.data.transforms import STYLES, size_transform

__all__ = [
    "DATASETS",
    "SHAPE_CLASSES",
    "STYLES",
    "Batch",
    "CalibrationBatches",
    "CalibrationDraw",
    "CalibrationSource",
    "DataPreset",
    "LoaderWorkers",
    "MixSizeBatchSampler",
    "ShapesDataset",
    "SizedViewDataset",
    "build_dataset",
    "build_loader",
    "dataset_info",
    "generate_shapes",
    "mixsize_collate",
    "normalization",
    "size_transform",
]
