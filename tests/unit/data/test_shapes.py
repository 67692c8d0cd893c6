"""The generated shapes dataset: determinism, balance, layout, on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mixsize_ray.data import shapes
from mixsize_ray.data.shapes import SHAPE_CLASSES, ShapesDataset, default_root, generate_shapes, split_seed
from mixsize_ray.errors import ConfigError


def test_same_seed_is_byte_identical_and_other_seed_differs():
    a_img, a_lab = generate_shapes(300, seed=3)  # > one render chunk
    b_img, b_lab = generate_shapes(300, seed=3)
    c_img, c_lab = generate_shapes(300, seed=4)
    assert a_img.tobytes() == b_img.tobytes() and np.array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)
    assert not np.array_equal(a_lab, c_lab)


@pytest.mark.parametrize("n, resolution", [(50, 64), (23, 32)])
def test_shape_dtype_and_class_balance(n, resolution):
    images, labels = generate_shapes(n, seed=0, resolution=resolution)
    assert images.shape == (n, resolution, resolution, 3) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.int64
    counts = np.bincount(labels, minlength=len(SHAPE_CLASSES))
    assert len(counts) == 10 and counts.max() - counts.min() <= 1 and counts.sum() == n
    # the labels are shuffled, not sorted by class
    assert not np.array_equal(labels, np.sort(labels))


def test_images_are_not_blank_and_classes_differ():
    images, labels = generate_shapes(200, seed=1)
    assert images.std() > 20  # backgrounds, shapes and noise vary
    # the object sits at the centre (small offset): a disc covers the centre, a ring has background there
    img = images.astype(np.float32).mean(-1)  # [N, 64, 64]
    centre = img[:, 30:34, 30:34].mean((1, 2))
    border = np.concatenate([img[:, 0, :], img[:, -1, :]], axis=1).mean(1)
    contrast = np.abs(centre - border)
    disc = contrast[labels == SHAPE_CLASSES.index("disc")]
    ring = contrast[labels == SHAPE_CLASSES.index("ring")]
    assert disc.mean() > 2 * ring.mean()


def test_object_scale_is_fixed_relative_to_frame():
    # at half the resolution, the same class looks the same after downscaling: the object is 1/4 of the frame
    big, lab_big = generate_shapes(40, seed=5, resolution=64)
    small, lab_small = generate_shapes(40, seed=5, resolution=32)
    assert np.array_equal(lab_big, lab_small)
    down = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.BILINEAR)) for im in big])
    err = np.abs(down.astype(np.float32) - small.astype(np.float32)).mean()
    other = np.abs(down.astype(np.float32) - np.roll(small, 1, axis=0).astype(np.float32)).mean()
    assert err < other / 3


@pytest.mark.parametrize(
    "kwargs", [{"n": 0, "seed": 0}, {"n": 5, "seed": -1}, {"n": 5, "seed": 0, "resolution": 8}]
)
def test_invalid_arguments_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        generate_shapes(**kwargs)


def test_dataset_items_and_attributes(tmp_path):
    ds = ShapesDataset(tmp_path, "train", size=30, seed=0)
    img, label = ds[0]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (64, 64)
    assert isinstance(label, int) and label == ds.targets[0]
    assert len(ds) == 30 and ds.classes == list(SHAPE_CLASSES)
    assert np.array_equal(np.asarray(img), ds.data[0])


def test_train_and_test_splits_use_different_seeds(tmp_path):
    train = ShapesDataset(tmp_path, "train", size=20, seed=0)
    test = ShapesDataset(tmp_path, "test", size=20, seed=0)
    assert split_seed(0, "train") != split_seed(0, "test")
    assert not np.array_equal(train.data, test.data)
    with pytest.raises(ConfigError, match="data.split"):
        ShapesDataset(tmp_path, "valid", size=20)


def test_cache_is_reused_without_regenerating(tmp_path, monkeypatch):
    first = ShapesDataset(tmp_path, "train", size=25, seed=7)
    assert first.cache_file.is_file() and first.cache_file.parent == tmp_path
    mtime = first.cache_file.stat().st_mtime_ns

    def boom(*args, **kwargs):
        raise AssertionError("regenerated although the cache file exists")

    monkeypatch.setattr(shapes, "generate_shapes", boom)
    second = ShapesDataset(tmp_path, "train", size=25, seed=7)
    assert np.array_equal(first.data, second.data) and first.targets == second.targets
    assert second.cache_file.stat().st_mtime_ns == mtime
    # another key is another file, and needs the generator
    with pytest.raises(AssertionError, match="regenerated"):
        ShapesDataset(tmp_path, "train", size=26, seed=7)


def test_atomic_write_leaves_only_the_npz(tmp_path):
    ShapesDataset(tmp_path, "test", size=10, seed=1)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].endswith(".npz") and "test" in files[0]


def test_failed_write_leaves_no_tmp_and_no_cache(tmp_path, monkeypatch):
    def broken_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(shapes.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        ShapesDataset(tmp_path, "train", size=10)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_cache_is_regenerated(tmp_path):
    ds = ShapesDataset(tmp_path, "train", size=10)
    ds.cache_file.write_bytes(b"garbage")
    again = ShapesDataset(tmp_path, "train", size=10)
    assert np.array_equal(again.data, ds.data)


def test_default_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MIXSIZE_RAY_DATA_DIR", str(tmp_path))
    assert default_root() == tmp_path / "shapes"
    monkeypatch.delenv("MIXSIZE_RAY_DATA_DIR")
    assert default_root().parts[-3:] == (".cache", "mixsize_ray", "shapes")
