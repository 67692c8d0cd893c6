"""Data: the generated shapes dataset, CIFAR / ImageFolder, per-size transforms and the one mixed-size loader."""

from mixsize_ray.data.datasets import DATASETS, build_dataset, dataset_info, normalization
from mixsize_ray.data.loader import (
    Batch,
    MixSizeBatchSampler,
    SizedViewDataset,
    build_loader,
    calibration_batches,
    eval_loader,
    mixsize_collate,
)
from mixsize_ray.data.shapes import SHAPE_CLASSES, ShapesDataset, generate_shapes
from mixsize_ray.data.transforms import SizeTransforms, eval_transform, train_transform, transforms_for

__all__ = [
    "DATASETS",
    "SHAPE_CLASSES",
    "Batch",
    "MixSizeBatchSampler",
    "ShapesDataset",
    "SizeTransforms",
    "SizedViewDataset",
    "build_dataset",
    "build_loader",
    "calibration_batches",
    "dataset_info",
    "eval_loader",
    "eval_transform",
    "generate_shapes",
    "mixsize_collate",
    "normalization",
    "train_transform",
    "transforms_for",
]
