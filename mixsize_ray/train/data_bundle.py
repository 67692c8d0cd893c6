"""The datasets of a run and the per-size batch sources built on them (training, evaluation, calibration)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from mixsize_ray.config import Config
from mixsize_ray.data import datasets as ds
from mixsize_ray.data import loader as ld
from mixsize_ray.data import transforms as tf


class DataBundle:
    """Train/test splits of ``cfg.data`` with their style, native size and normalisation.

    ``eval_batches(S)`` yields ``(images [b, 3, S, S], targets [b])`` of the test split with the evaluation
    transform; ``calibration_batches(S, batch, seed)`` yields ``[B, 3, S, S]`` training images with TRAINING
    augmentation (what BN calibration uses, as in the official code).
    """

    def __init__(self, cfg: Config, train: bool = True):
        d = cfg.data
        self.cfg = cfg
        self.info = ds.dataset_info(d.name, d.root)
        self.mean, self.std = ds.normalization(d.name)
        self.train_transforms = tf.transforms_for(d.name, train=True)
        self.train_set = ds.build_dataset(d.name, d.root, "train", size=d.train_size, seed=d.seed)
        self.test_set = ds.build_dataset(d.name, d.root, "test", size=d.test_size, seed=d.seed)

    def eval_batches(self, size: int, batch_size: int | None = None) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        return ld.eval_loader(self.test_set, self.info.style, self.info.native_resolution, size,
                              batch_size=batch_size or self.cfg.train.eval_batch_size, num_workers=0,
                              mean=self.mean, std=self.std)

    def calibration_batches(self, size: int, batch_size: int, num_batches: int, seed: int = 0) -> Iterable:
        return ld.calibration_batches(self.train_set, self.info.style, self.info.native_resolution, size,
                                      batch_size=batch_size, num_batches=num_batches, num_workers=0, seed=seed,
                                      mean=self.mean, std=self.std)
