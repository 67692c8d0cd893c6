"""The allowed values of the config fields whose code needs torch, declared here without it.

``config.py`` validates ``data.name``, ``data.style``, ``model.name`` and ``optim.weight_decay_on`` against these,
so reading and checking a config imports no torch: a refused command answers in about 0.5 s instead of 3 s.
The modules that implement each name import the tuple from here, and ``tests/unit/test_config.py`` checks
that each registry (datasets, transforms, models, weight decay) holds exactly these names.

Example:
    >>> from mixsize_ray.core.choices import DATASETS, MODELS
    >>> DATASETS[0], "resnet20" in MODELS
    ('shapes', True)
"""

from __future__ import annotations

DATASETS: tuple[str, ...] = ("shapes", "cifar10", "cifar100", "imagefolder")
"""``data.name``: the registry of ``data/datasets.py``; ``shapes`` (generated here) is the default."""

STYLES: tuple[str, ...] = ("cifar", "imagenet")
"""``data.style``: the augmentation families of ``data/transforms.py``."""

MODELS: tuple[str, ...] = ("resnet8", "resnet20", "resnet44", "resnet56", "wrn28_10", "resnet18", "resnet50",
                           "efficientnet_b0")
"""``model.name``: the builders of ``models/__init__.py``."""

WEIGHT_DECAY_ON: tuple[str, ...] = ("weights", "all")
"""``optim.weight_decay_on``: conv/linear weights only (the paper's setting), or every parameter."""
