"""How many images a dataset's splits hold, known without torch: the regime solver's epoch length.

Kept apart from ``datasets.py`` (torch, torchvision) so that ``mixsize-ray regime`` and a run's preflight
answer without importing them; only an ImageFolder count reads torchvision's list of image extensions.
"""

from __future__ import annotations

from pathlib import Path

from mixsize_ray.core.choices import DATASETS
from mixsize_ray.errors import ConfigError

SHAPES_DEFAULT_SIZES: dict[str, int] = {"train": 10000, "test": 2000}
"""Number of generated shapes images per split when ``size`` is None."""


def count_train_images(name: str, root: str | Path | None, train_size: int | None) -> int | None:
    """Images one epoch of ``name`` trains on, without decoding any: ``train_size`` capped by the real count.

    shapes: ``train_size`` or the generated default; CIFAR: 50,000; ImageFolder: the image files under
    ``root/train/<class>/`` (torchvision's IMG_EXTENSIONS). None when ``root`` is missing (the run will be
    refused by its preflight, not here).

    Example:
        >>> count_train_images("shapes", None, 500), count_train_images("cifar10", None, None)
        (500, 50000)
    """
    if name not in DATASETS:
        raise ConfigError("data.name", f"one of {list(DATASETS)}", name)
    if name == "shapes":
        return train_size or SHAPES_DEFAULT_SIZES["train"]
    if name.startswith("cifar"):
        total = 50000
    else:
        if root is None or not (Path(root).expanduser() / "train").is_dir():
            return None
        from torchvision.datasets.folder import IMG_EXTENSIONS

        folder = Path(root).expanduser() / "train"
        total = sum(
            1
            for cls in folder.iterdir() if cls.is_dir()
            for p in cls.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file()
        )
    return min(total, train_size) if train_size else total
