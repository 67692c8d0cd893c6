"""Images per epoch without torch: the counts the regime solver and the preflight use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mixsize_ray.data.counts import count_train_images
from mixsize_ray.errors import ConfigError
from tests.unit.data.test_datasets import _write_image_tree


def test_count_train_images_of_an_imagefolder_is_its_files(tmp_path):
    _write_image_tree(tmp_path)
    (tmp_path / "train" / "n01" / "notes.txt").write_text("not an image")
    assert count_train_images("imagefolder", tmp_path, None) == 6
    assert count_train_images("imagefolder", tmp_path, 4) == 4
    assert count_train_images("imagefolder", tmp_path / "missing", None) is None
    assert count_train_images("cifar10", None, None) == 50000 and count_train_images("shapes", None, None) == 10000
    assert count_train_images("cifar100", None, 1234) == 1234 and count_train_images("shapes", None, 500) == 500


def test_an_unknown_dataset_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"data.name: expected one of \['shapes', 'cifar10', 'cifar100', "
                                          r"'imagefolder'\], got 'mnist'"):
        count_train_images("mnist", None, None)


def test_config_and_counts_load_without_torch():
    """A refused command answers before torch loads (about 0.5 s instead of 3 s): config, the regime solver
    and the counts import no torch, torchvision or numpy-backed data code."""
    code = ("import sys; import mixsize_ray.config, mixsize_ray.core.regime, mixsize_ray.data.counts; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_name_the_data_package_lists_resolves_to_its_module():
    """``mixsize_ray.data`` loads its names lazily (so ``counts`` stays torch-free): each listed name must
    still be the object of the module that defines it."""
    import importlib

    import mixsize_ray.data as data

    for name in data.__all__:
        home = importlib.import_module(f"mixsize_ray.data.{data._HOME[name]}")
        assert getattr(data, name) is getattr(home, name), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = data.nope
