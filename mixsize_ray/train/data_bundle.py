"""The datasets of a run and the config's rules for its three batch sources (training, evaluation,
calibration), built by the data side's :class:`~mixsize_ray.data.presets.DataPreset`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader

from mixsize_ray.config import Config
from mixsize_ray.data import datasets as ds
from mixsize_ray.data.device_inputs import DeviceInputs
from mixsize_ray.data.eval_source import EvalSource
from mixsize_ray.data.loader import CalibrationDraw, LoaderWorkers, StepLike
from mixsize_ray.data.presets import CalibrationSource, DataPreset

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
    """Train/test splits of ``cfg.data`` and their :class:`~mixsize_ray.data.presets.DataPreset` (style, native
    side, normalisation), with the config's one rule for each batch source:

    * :meth:`train_loader` — the mixed-size training loader (``data.num_workers``, seeded by ``train.seed``);
    * :meth:`eval_batches` ``(S)`` — ``(images [b, 3, S, S], targets [b])`` of the test split, evaluation
      transform, ``train.eval_batch_size``;
    * :meth:`calibration_source` ``(S, rank)`` — ``[B, 3, S, S]`` training images with TRAINING augmentation
      (what BN calibration uses, as in the official code), drawn by :meth:`calibration_draw`: the rule that
      training and ``mixsize-ray eval`` share.

    Example:
        >>> from mixsize_ray.config import load_config
        >>> cfg = load_config(None, ["data.train_size=64", "data.test_size=16", "regime.base_batch=512",
        ...                          "train.seed=3", "train.calibrate_batches=2"])
        >>> data = DataBundle(cfg)
        >>> data.calibration_draw(rank=1)
        CalibrationDraw(batch_size=256, num_batches=2, seed=3001)
        >>> [x.shape for x in data.calibration_source(16, rank=1)]
        [torch.Size([256, 3, 16, 16]), torch.Size([256, 3, 16, 16])]
    """

    def __init__(self, cfg: Config):
        d = cfg.data
        self.cfg = cfg
        self.info, self.mean, self.std = resolve_data(cfg)
        native = self.info.native_resolution if self.info.style == "cifar" else None
        self.preset = DataPreset(self.info.style, native, self.mean, self.std)
        self.train_set = ds.build_dataset(d.name, d.root, "train", size=d.train_size, seed=d.seed)
        self.test_set = ds.build_dataset(d.name, d.root, "test", size=d.test_size, seed=d.seed)
        if self.info.style == "cifar" and d.name == "imagefolder":  # small photos: one native side
            self.train_set = ds.ResizedDataset(self.train_set, self.info.native_resolution)
            self.test_set = ds.ResizedDataset(self.test_set, self.info.native_resolution)
        self._calibration: CalibrationSource | None = None

    def train_loader(self, steps_fn: Callable[[], Sequence[StepLike]], rank: int = 0, world_size: int = 1,
                     pin_memory: bool = False) -> DataLoader:
        """The training loader of this rank over the schedule ``steps_fn`` (``data.num_workers`` workers,
        augmentation seeded by ``train.seed``)."""
        workers = LoaderWorkers(self.cfg.data.num_workers, pin_memory=pin_memory)
        return self.preset.train_loader(self.train_set, steps_fn, rank=rank, world_size=world_size,
                                        workers=workers, seed=self.cfg.train.seed)

    def eval_batches(self, size: int, batch_size: int | None = None) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """The whole test split at ``size``, in this process, in batches of ``batch_size`` (default
        ``train.eval_batch_size``)."""
        return self.preset.eval_loader(self.test_set, size, batch_size or self.cfg.train.eval_batch_size)

    def device_inputs(self, device: torch.device | str = "cpu", channels_last: bool = False) -> DeviceInputs:
        """Loader pixels -> this dataset's normalised inputs on ``device``
        (:class:`~mixsize_ray.data.device_inputs.DeviceInputs`)."""
        return DeviceInputs(self.preset.normalization, torch.device(device), channels_last)

    def eval_source(self, rank: int = 0, world_size: int = 1, inputs: DeviceInputs | None = None) -> EvalSource:
        """This rank's shard of the test split (``range(rank, n, world_size)``), loaded by ``data.num_workers``
        workers (pinned for a CUDA ``inputs``), normalised by ``inputs`` (default: on the CPU): ``source(S)``
        per size, ``source.together(sizes)`` in one pass (:class:`~mixsize_ray.data.eval_source.EvalSource`).
        Every rank of a run evaluates its shard and the counts are summed, so each image counts once."""
        inputs = inputs if inputs is not None else self.device_inputs()
        workers = LoaderWorkers(self.cfg.data.num_workers, pin_memory=inputs.pin_memory)
        return EvalSource(self.preset, self.test_set, self.cfg.train.eval_batch_size, rank=rank,
                          world_size=world_size, workers=workers, inputs=inputs)

    def calibration_draw(self, rank: int = 0) -> CalibrationDraw:
        """THE calibration rule: ``train.calibrate_batches`` batches of ``min(regime.base_batch, 256)`` images,
        seeded by ``train.seed * 1000 + rank``."""
        c = self.cfg
        return CalibrationDraw(batch_size=min(c.regime.base_batch, CALIBRATION_MAX_BATCH),
                               num_batches=c.train.calibrate_batches, seed=c.train.seed * 1000 + rank)

    def calibration_source(self, size: int, rank: int = 0) -> Iterable[torch.Tensor]:
        """This rank's calibration batches at ``size`` by :meth:`calibration_draw`.

        End-of-training calibration (every rank, averaged) and ``mixsize-ray eval`` (rank 0) both call this,
        so a checkpoint re-evaluated with recalibration sees the same images as rank 0 did in training. The
        CIFAR style decodes and augments the native-side batches once for all sizes
        (:class:`~mixsize_ray.data.presets.CalibrationSource`).
        """
        return self._source(rank)(size)

    def calibration_together(self, sizes: list[int], rank: int = 0) -> Iterator[dict[int, torch.Tensor]]:
        """This rank's calibration batches for every size in one pass: ``{S: [B, 3, S, S]}`` per batch,
        size S's equal to :meth:`calibration_source` ``(S, rank)``'s
        (:meth:`~mixsize_ray.data.presets.CalibrationSource.together`)."""
        return self._source(rank).together(sizes)

    def _source(self, rank: int) -> CalibrationSource:
        draw = self.calibration_draw(rank)
        if self._calibration is None or self._calibration.draw != draw:
            self._calibration = self.preset.calibration_source(self.train_set, draw)
        return self._calibration
