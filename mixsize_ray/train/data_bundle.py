"""The datasets of a run and the per-size batch sources built on them (training, evaluation, calibration)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from mixsize_ray.config import Config
from mixsize_ray.core.calibration import resize_batches
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
        self._calib_key: tuple[int, int, int] | None = None
        self._calib_base: list[torch.Tensor] = []

    def eval_batches(self, size: int, batch_size: int | None = None) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        return ld.eval_loader(self.test_set, self.info.style, self.info.native_resolution, size,
                              batch_size=batch_size or self.cfg.train.eval_batch_size, num_workers=0,
                              mean=self.mean, std=self.std)

    def calibration_batches(self, size: int, batch_size: int, num_batches: int, seed: int = 0) -> Iterable:
        """Training-augmented batches at ``size``.

        CIFAR-style augmentation (pad-crop-flip at the native side, then resize to S) does not depend on S
        before its last step, so the native-side batches are decoded and augmented ONCE per
        (batch_size, num_batches, seed) and every size of a sweep is an antialiased resize of them. The
        ImageNet style (RandomResizedCrop(S)) is loaded per size.
        """
        if self.info.style != "cifar":
            return ld.calibration_batches(self.train_set, self.info.style, self.info.native_resolution, size,
                                          batch_size=batch_size, num_batches=num_batches, num_workers=0,
                                          seed=seed, mean=self.mean, std=self.std)
        key = (batch_size, num_batches, seed)
        if self._calib_key != key:
            native = self.info.native_resolution
            self._calib_base = list(ld.calibration_batches(
                self.train_set, self.info.style, native, native, batch_size=batch_size, num_batches=num_batches,
                num_workers=0, seed=seed, mean=self.mean, std=self.std))
            self._calib_key = key
        return resize_batches(self._calib_base, size)
