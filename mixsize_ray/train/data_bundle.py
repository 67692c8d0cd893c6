"""The datasets of a run and the per-size batch sources built on them (training, evaluation, calibration)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from mixsize_ray.config import Config
from mixsize_ray.core.calibration import resize_batches
from mixsize_ray.data import datasets as ds
from mixsize_ray.data import loader as ld
from mixsize_ray.data import transforms as tf

CALIBRATION_MAX_BATCH = 256
"""Calibration batches hold ``min(regime.base_batch, 256)`` images (the official evaluate.py calibrates on
200 training batches of its ``-b``, 64 in the README's CIFAR example)."""


def resolve_data(cfg: Config) -> tuple[ds.DatasetInfo, tuple, tuple]:
    """The dataset's ``(info, mean, std)`` after ``data.style``/``native_size``/``mean``/``std`` overrides.

    ``style: cifar`` on an ImageFolder uses ``native_size`` (default 32) as the native side.

    Example:
        >>> from mixsize_ray.config import load_config
        >>> info, mean, std = resolve_data(load_config(None, ["data.style=cifar", "data.name=shapes"]))
        >>> info.style, info.native_resolution, mean
        ('cifar', 64, (0.5, 0.5, 0.5))
    """
    d = cfg.data
    info = ds.dataset_info(d.name, d.root)
    style = info.style if d.style == "auto" else d.style
    native = info.native_resolution
    if style == "cifar" and (d.native_size is not None or info.style != "cifar"):
        native = d.native_size or 32
    info = info._replace(style=style, native_resolution=native)
    mean, std = ds.normalization(d.name)
    return info, tuple(d.mean) if d.mean else mean, tuple(d.std) if d.std else std


class DataBundle:
    """Train/test splits of ``cfg.data`` with their style, native size and normalisation.

    ``eval_batches(S)`` yields ``(images [b, 3, S, S], targets [b])`` of the test split with the evaluation
    transform; ``calibration_source(S, rank)`` yields ``[B, 3, S, S]`` training images with TRAINING
    augmentation (what BN calibration uses, as in the official code) by the one rule that training and
    ``mixsize-ray eval`` share.
    """

    def __init__(self, cfg: Config, train: bool = True):
        d = cfg.data
        self.cfg = cfg
        self.info, self.mean, self.std = resolve_data(cfg)
        native = self.info.native_resolution if self.info.style == "cifar" else None
        self.train_transforms = tf.SizeTransforms(self.info.style, native, train=True, mean=self.mean, std=self.std)
        self.train_set = ds.build_dataset(d.name, d.root, "train", size=d.train_size, seed=d.seed)
        self.test_set = ds.build_dataset(d.name, d.root, "test", size=d.test_size, seed=d.seed)
        if self.info.style == "cifar" and d.name == "imagefolder":  # small photos: one native side
            self.train_set = ds.ResizedDataset(self.train_set, self.info.native_resolution)
            self.test_set = ds.ResizedDataset(self.test_set, self.info.native_resolution)
        self._calib_key: tuple[int, int, int] | None = None
        self._calib_base: list[torch.Tensor] = []

    def eval_batches(self, size: int, batch_size: int | None = None) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        return ld.eval_loader(self.test_set, self.info.style, self.info.native_resolution, size,
                              batch_size=batch_size or self.cfg.train.eval_batch_size, num_workers=0,
                              mean=self.mean, std=self.std)

    def calibration_source(self, size: int, rank: int = 0) -> Iterable[torch.Tensor]:
        """THE calibration rule: ``train.calibrate_batches`` training-augmented batches of
        ``min(regime.base_batch, 256)`` images at ``size``, seeded by ``train.seed * 1000 + rank``.

        End-of-training calibration (every rank, averaged) and ``mixsize-ray eval`` (rank 0) both call this,
        so a checkpoint re-evaluated with recalibration sees the same images as rank 0 did in training.
        """
        c = self.cfg
        return self.calibration_batches(size, batch_size=min(c.regime.base_batch, CALIBRATION_MAX_BATCH),
                                        num_batches=c.train.calibrate_batches, seed=c.train.seed * 1000 + rank)

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
