"""Datasets by name: the generated shapes (default), CIFAR-10/100 from a local folder, ImageFolder (ImageNet layout).

Every dataset returns ``(PIL.Image RGB, int label)`` and has ``classes`` and ``targets``, so the per-size
transforms of :mod:`mixsize_ray.data.transforms` apply to all of them alike. ImageFolder returns an RGB JPEG
undecoded (:func:`mixsize_ray.data.jpeg_draft.open_image`): the ImageNet-style transforms decode it at reduced
scale where that keeps the output's pixels; any other use decodes it in full. :class:`CorruptImageError` (an
unreadable file, named) is raised where the image is opened or, for a JPEG with a broken body, decoded.

Example:
    >>> ds = build_dataset("shapes", "/tmp/shapes", "train", size=100)
    >>> num_classes, native, style = dataset_info("shapes")
    >>> (len(ds), num_classes, native, style)
    (100, 10, 64, 'cifar')
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10, CIFAR100, ImageFolder

from mixsize_ray.core.choices import DATASETS
from mixsize_ray.data.counts import SHAPES_DEFAULT_SIZES
from mixsize_ray.data.jpeg_draft import CorruptImageError as CorruptImageError  # re-exported (cli catches it)
from mixsize_ray.data.jpeg_draft import open_image
from mixsize_ray.data.shapes import ShapesDataset
from mixsize_ray.data.transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SHAPES_MEAN,
    SHAPES_STD,
)
from mixsize_ray.errors import ConfigError

SPLITS: tuple[str, ...] = ("train", "test")
"""Splits; ``val`` is accepted as an alias of ``test`` (ImageFolder reads ``root/val``)."""


class DatasetInfo(NamedTuple):
    """What the training code needs to know about a dataset before loading it."""

    num_classes: int
    native_resolution: int
    style: str  # "cifar" (pad-crop-flip then resize) or "imagenet" (RandomResizedCrop)


_INFO: dict[str, DatasetInfo] = {
    "shapes": DatasetInfo(10, 64, "cifar"),
    "cifar10": DatasetInfo(10, 32, "cifar"),
    "cifar100": DatasetInfo(100, 32, "cifar"),
    "imagefolder": DatasetInfo(1000, 224, "imagenet"),
}

# per-dataset normalisation (mean, std) of RGB in [0, 1]; the constants live in transforms.py
_NORM: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "shapes": (SHAPES_MEAN, SHAPES_STD),
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
    "imagefolder": (IMAGENET_MEAN, IMAGENET_STD),
}


def _check_name(name: str) -> str:
    if name not in DATASETS:
        raise ConfigError("data.name", f"one of {list(DATASETS)}", name)
    return name


def _check_split(split: str) -> str:
    if split == "val":
        return "test"
    if split not in SPLITS:
        raise ConfigError("data.split", f"one of {list(SPLITS)} (or 'val')", split)
    return split


def dataset_info(name: str, root: str | Path | None = None) -> DatasetInfo:
    """``(num_classes, native_resolution, style)`` of a dataset, without loading it.

    For ``imagefolder`` the class count is that of ``root/train`` when ``root`` is given (and exists), else
    1000 (ImageNet); its native resolution 224 is the usual ImageNet training size.
    """
    info = _INFO[_check_name(name)]
    if name == "imagefolder" and root is not None and (Path(root) / "train").is_dir():
        n = sum(1 for p in (Path(root) / "train").iterdir() if p.is_dir())
        info = info._replace(num_classes=n)
    return info


def normalization(name: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel ``(mean, std)`` used to normalise images of dataset ``name`` (RGB values in [0, 1]).

    Example:
        >>> normalization("imagefolder")
        ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    """
    return _NORM[_check_name(name)]


class _LocalCIFAR10(CIFAR10):
    """torchvision's CIFAR10 reading a local folder: checks that the files exist (not their md5), no download."""

    def _check_integrity(self) -> bool:
        base = Path(self.root) / self.base_folder
        return all((base / name).is_file() for name, _ in self.train_list + self.test_list)

    def _load_meta(self) -> None:
        path = Path(self.root) / self.base_folder / self.meta["filename"]
        with open(path, "rb") as f:
            data = pickle.load(f, encoding="latin1")
        self.classes = data[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


class _LocalCIFAR100(_LocalCIFAR10, CIFAR100):
    """Same as :class:`_LocalCIFAR10` for CIFAR-100 (files ``train``, ``test``, ``meta``; fine labels)."""


def _build_cifar(name: str, root: str | Path | None, split: str) -> Dataset:
    cls = _LocalCIFAR10 if name == "cifar10" else _LocalCIFAR100
    folder = cls.base_folder
    files = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    allowed = (
        f"a folder containing {folder}/ (the official CIFAR python version, with {', '.join(files)}; "
        f"unpack {cls.filename} there)"
    )
    if root is None:
        raise ConfigError("data.root", allowed, None)
    base = Path(root).expanduser() / folder
    missing = [f for f in files if not (base / f).is_file()]
    if not base.is_dir():
        raise ConfigError("data.root", allowed, str(root))
    if missing:
        raise ConfigError(
            "data.root", allowed, str(root), hint=f"missing {', '.join(str(base / f) for f in missing)}"
        )
    try:
        return cls(str(Path(root).expanduser()), train=split == "train", download=False)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError) as err:
        raise ConfigError(
            "data.root", allowed, str(root), hint=f"unreadable file under {base}: {err}"
        ) from err


def _build_imagefolder(root: str | Path | None, split: str) -> Dataset:
    sub = "train" if split == "train" else "val"
    allowed = "a folder in ImageNet layout: ROOT/train/<class>/*.JPEG and ROOT/val/<class>/*.JPEG"
    if root is None:
        raise ConfigError("data.root", allowed, None)
    folder = Path(root).expanduser() / sub
    if not folder.is_dir():
        raise ConfigError("data.root", allowed, str(root), hint=f"missing folder {folder}")
    try:
        return ImageFolder(str(folder), loader=open_image)
    except FileNotFoundError as err:  # no class folder or no image with a known extension
        raise ConfigError("data.root", allowed, str(root), hint=str(err)) from err


class SubsetWithTargets(torch.utils.data.Subset):
    """A :class:`torch.utils.data.Subset` that keeps ``classes`` and exposes the subset's ``targets``."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        super().__init__(dataset, list(indices))
        self.classes: list[Any] = list(getattr(dataset, "classes", []))
        base_targets = getattr(dataset, "targets", None)
        self.targets: list[int] | None = (
            None if base_targets is None else [int(base_targets[i]) for i in self.indices]
        )


def subsample(dataset: Dataset, size: int, seed: int = 0) -> Dataset:
    """The first ``size`` items of a ``seed``-ed permutation of ``dataset`` (the dataset itself if it is smaller)."""
    n = len(dataset)  # type: ignore[arg-type]
    if size >= n:
        return dataset
    perm = np.random.default_rng(seed).permutation(n)[:size]
    return SubsetWithTargets(dataset, perm.tolist())


def build_dataset(
    name: str, root: str | Path | None, split: str, *, size: int | None = None, seed: int = 0
) -> Dataset:
    """A dataset of ``(PIL.Image RGB, int label)`` by name.

    Args:
        name: one of :data:`DATASETS`.
        root: for ``shapes`` the cache folder (None: ``$MIXSIZE_RAY_DATA_DIR/shapes`` or
            ``~/.cache/mixsize_ray/shapes``); for ``cifar10`` / ``cifar100`` the folder holding
            ``cifar-10-batches-py/`` / ``cifar-100-python/``; for ``imagefolder`` the folder holding
            ``train/<class>/`` and ``val/<class>/``.
        split: ``"train"`` or ``"test"`` (``"val"`` is an alias of ``"test"``).
        size: for ``shapes`` the number of images generated (default :data:`SHAPES_DEFAULT_SIZES`); for the
            others an optional subsample (first ``size`` of a ``seed``-ed permutation) for smoke runs.
        seed: shapes generation seed / subsample seed.

    Raises:
        ConfigError: unknown name or split, missing folder or file (the message says what to put where).
    """
    name = _check_name(name)
    split = _check_split(split)
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ConfigError("data.size", "an int >= 1 or None", size)
    if name == "shapes":
        n = size if size is not None else SHAPES_DEFAULT_SIZES[split]
        return ShapesDataset(root, split, n, seed=seed, resolution=_INFO["shapes"].native_resolution)
    ds = _build_cifar(name, root, split) if name.startswith("cifar") else _build_imagefolder(root, split)
    return ds if size is None else subsample(ds, size, seed)


class ResizedDataset(Dataset):
    """``(PIL image, label)`` of ``base`` with every image resized to ``side x side`` (bilinear).

    What a CIFAR-style run on an ImageFolder of small images of mixed sides needs: the pad-crop-flip of
    :mod:`mixsize_ray.data.transforms` then works at one native side, as on CIFAR.
    """

    def __init__(self, base: Dataset, side: int) -> None:
        self.base, self.side = base, int(side)
        self.classes = list(getattr(base, "classes", []))
        self.targets = getattr(base, "targets", None)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        img, label = self.base[index]
        if img.size != (self.side, self.side):
            img = img.resize((self.side, self.side), Image.BILINEAR)
        return img, label
