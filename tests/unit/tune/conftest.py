"""A small valid search space (plain data) that tests copy and break one field at a time."""

from __future__ import annotations

import copy

import pytest

BASE_SPACE = {
    "name": "unit",
    "fixed": {
        "data": {"name": "shapes", "train_size": 512, "test_size": 256, "num_workers": 0},
        "model": {"name": "resnet20"},
        "regime": {"tolerance": 0.15},
        "train": {"epochs": 1, "max_steps_per_epoch": 4, "sweep_sizes": [16, 24, 32, 40]},
        "tracking": {"enabled": False},
    },
    "space": {
        "sizes": [16, 24, 32, 40],
        "simplex": {"floor": 0.05},
        "base": {"size": 32, "batch": 32, "duplicates": 1},
        "mode": ["B+", "D+"],
        "smoothing_alpha": {"low": 0.5, "high": 0.95},
        "lr": {"low": 0.05, "high": 0.4, "log": True},
    },
    "objectives": [{"kind": "target", "size": 32}],
    "constraints": {"mean_size": {"low": 20, "high": 36}},
    "search": {"num_samples": 4, "max_concurrent": 2},
}


@pytest.fixture
def raw_space():
    return copy.deepcopy(BASE_SPACE)
