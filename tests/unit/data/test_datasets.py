"""build_dataset: shapes, CIFAR-10/100 in the official python-pickle format, ImageFolder, errors."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from mixsize_ray.data.datasets import (
    DATASETS,
    CorruptImageError,
    build_dataset,
    dataset_info,
    normalization,
)
from mixsize_ray.errors import ConfigError

# --- the official CIFAR files were pickled by Python 2: dict keys are py2 `str` (SHORT_BINSTRING opcodes), which
# torchvision reads with encoding="latin1" as str and pickle.load(..., encoding="bytes") reads as b'data'.


class _Py2Str(bytes):
    """Pickled as a Python 2 ``str`` (SHORT_BINSTRING)."""


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us add an opcode writer
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2str(self, obj):
        data = bytes(obj)
        assert len(data) < 256
        self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)

    dispatch[_Py2Str] = _save_py2str


def _py2_dump(obj, path):
    def conv(o):
        if isinstance(o, dict):
            return {_Py2Str(k.encode()): conv(v) for k, v in o.items()}
        if isinstance(o, list):
            return [_Py2Str(x.encode()) if isinstance(x, str) else x for x in o]
        return o

    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(conv(obj))
    path.write_bytes(buf.getvalue())


def _cifar_rows(labels, seed):
    """[N, 3072] uint8 rows (R plane, G plane, B plane of 32x32); pixel (0, 0) encodes the label in red."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    data[:, 0] = np.asarray(labels, dtype=np.uint8) * 10  # red channel of pixel (0, 0)
    data[:, 1024] = 7  # green channel of pixel (0, 0)
    return data


def write_cifar10(root, per_batch=4):
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    for i in range(1, 6):
        labels = [(i + j) % 10 for j in range(per_batch)]
        _py2_dump(
            {
                "batch_label": f"training batch {i} of 5",
                "labels": labels,
                "data": _cifar_rows(labels, i),
                "filenames": [f"f{i}_{j}.png" for j in range(per_batch)],
            },
            base / f"data_batch_{i}",
        )
    labels = list(range(per_batch))
    _py2_dump(
        {
            "batch_label": "testing batch 1 of 1",
            "labels": labels,
            "data": _cifar_rows(labels, 9),
            "filenames": [f"t{j}.png" for j in range(per_batch)],
        },
        base / "test_batch",
    )
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _py2_dump(
        {"num_cases_per_batch": per_batch, "label_names": names, "num_vis": 3072}, base / "batches.meta"
    )
    return base


def write_cifar100(root, n_train=12, n_test=5):
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = [(7 * j) % 100 for j in range(n)]
        _py2_dump(
            {
                "filenames": [f"{name}{j}.png" for j in range(n)],
                "batch_label": name,
                "fine_labels": fine,
                "coarse_labels": [f // 5 for f in fine],
                "data": _cifar_rows([f % 25 for f in fine], n),
            },
            base / name,
        )
    _py2_dump(
        {
            "fine_label_names": [f"fine{i}" for i in range(100)],
            "coarse_label_names": [f"coarse{i}" for i in range(20)],
        },
        base / "meta",
    )
    return base


def test_fake_cifar_is_in_the_python2_pickle_format(tmp_path):
    base = write_cifar10(tmp_path)
    with open(base / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert (
        set(raw) >= {b"data", b"labels"}
        and raw[b"data"].shape == (4, 3072)
        and raw[b"data"].dtype == np.uint8
    )


def test_cifar10_loads_train_and_test_with_channel_planes(tmp_path):
    write_cifar10(tmp_path, per_batch=4)
    train = build_dataset("cifar10", str(tmp_path), "train")
    test = build_dataset("cifar10", str(tmp_path), "test")
    assert len(train) == 20 and len(test) == 4
    assert train.classes[0] == "airplane" and len(train.classes) == 10
    img, label = train[5]  # batch 2, item 1
    assert isinstance(img, Image.Image) and img.size == (32, 32) and img.mode == "RGB"
    assert label == (2 + 1) % 10 and train.targets[5] == label
    assert img.getpixel((0, 0))[:2] == (label * 10, 7)  # the R and G planes land on the right channels
    assert dataset_info("cifar10") == (10, 32, "cifar")


def test_cifar100_uses_fine_labels(tmp_path):
    write_cifar100(tmp_path, n_train=12, n_test=5)
    train = build_dataset("cifar100", tmp_path, "train")
    test = build_dataset("cifar100", tmp_path, "val")  # alias of test
    assert len(train) == 12 and len(test) == 5
    assert len(train.classes) == 100 and train.classes[3] == "fine3"
    assert train.targets == [(7 * j) % 100 for j in range(12)]
    img, label = train[3]
    assert label == 21 and img.getpixel((0, 0))[0] == (21 % 25) * 10
    assert dataset_info("cifar100").num_classes == 100


def test_cifar_subsample_is_seeded(tmp_path):
    write_cifar10(tmp_path)
    a = build_dataset("cifar10", tmp_path, "train", size=6, seed=1)
    b = build_dataset("cifar10", tmp_path, "train", size=6, seed=1)
    c = build_dataset("cifar10", tmp_path, "train", size=6, seed=2)
    assert len(a) == 6 and a.indices == b.indices and a.indices != c.indices
    full = build_dataset("cifar10", tmp_path, "train")
    assert a.targets == [full.targets[i] for i in a.indices] and a.classes == full.classes
    assert a[0][1] == full[a.indices[0]][1]


def test_missing_cifar_folder_says_what_to_put_where(tmp_path):
    with pytest.raises(ConfigError) as err:
        build_dataset("cifar10", str(tmp_path / "x"), "train")
    msg = str(err.value)
    assert msg.startswith("data.root: expected a folder containing cifar-10-batches-py/")
    assert "python version" in msg and str(tmp_path / "x") in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="cifar-100-python/"):
        build_dataset("cifar100", None, "train")


def test_missing_cifar_file_is_named(tmp_path):
    base = write_cifar10(tmp_path)
    (base / "data_batch_3").unlink()
    with pytest.raises(ConfigError, match="missing .*data_batch_3"):
        build_dataset("cifar10", tmp_path, "train")


def test_garbage_cifar_file_is_a_config_error(tmp_path):
    base = write_cifar10(tmp_path)
    (base / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match="unreadable"):
        build_dataset("cifar10", tmp_path, "test")


def _write_image_tree(root):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls, fmt in (("n01", "JPEG"), ("n02", "png")):
            d = root / split / cls
            d.mkdir(parents=True)
            for k in range(3 if split == "train" else 1):
                arr = rng.integers(0, 256, (40 + k, 50, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"img{k}.{fmt}", format="JPEG" if fmt == "JPEG" else "PNG")


def test_imagefolder_loads_real_files(tmp_path):
    _write_image_tree(tmp_path)
    train = build_dataset("imagefolder", tmp_path, "train")
    val = build_dataset("imagefolder", tmp_path, "test")
    assert len(train) == 6 and len(val) == 2
    assert train.classes == ["n01", "n02"] and sorted(set(train.targets)) == [0, 1]
    img, label = train[4]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (50, 41) and label == 1
    assert dataset_info("imagefolder", tmp_path) == (2, 224, "imagenet")
    assert dataset_info("imagefolder").num_classes == 1000


def test_corrupt_jpeg_names_the_file(tmp_path):
    _write_image_tree(tmp_path)
    bad = tmp_path / "train" / "n01" / "zz_bad.JPEG"
    bad.write_bytes(b"\xff\xd8\xff garbage, not a jpeg" * 10)
    ds = build_dataset("imagefolder", tmp_path, "train")
    i = [p for p, _ in ds.samples].index(str(bad))
    with pytest.raises(CorruptImageError, match="zz_bad.JPEG"):
        ds[i]
    # also from a DataLoader worker: the type and the path cross the process boundary
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, [i]), batch_size=None, num_workers=1)
    with pytest.raises(CorruptImageError, match=str(bad)):
        next(iter(loader))


def test_missing_imagefolder_split(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(
        ConfigError, match=r"ROOT/train/<class>/\*\.JPEG and ROOT/val/<class>.*missing folder"
    ):
        build_dataset("imagefolder", tmp_path, "val")


def test_shapes_by_name(tmp_path):
    ds = build_dataset("shapes", tmp_path, "train", size=20, seed=3)
    assert len(ds) == 20 and ds[0][0].size == (64, 64)
    assert dataset_info("shapes") == (10, 64, "cifar")
    mean, std = normalization("shapes")
    assert len(mean) == len(std) == 3


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"name": "mnist"}, "data.name"),
        ({"name": "shapes", "split": "dev"}, "data.split"),
        ({"name": "shapes", "size": 0}, "data.size"),
    ],
)
def test_invalid_inputs(tmp_path, kwargs, field):
    args = {"name": "shapes", "root": tmp_path, "split": "train"} | kwargs
    with pytest.raises(ConfigError) as err:
        build_dataset(args.pop("name"), args.pop("root"), args.pop("split"), **args)
    assert str(err.value).startswith(field + ": expected")
    if field == "data.name":
        assert all(n in str(err.value) for n in DATASETS) and "'mnist'" in str(err.value)



def test_small_image_folder_can_train_cifar_style_with_its_own_normalisation(tmp_path):
    from mixsize_ray.config import load_config
    from mixsize_ray.train.data_bundle import DataBundle

    _write_image_tree(tmp_path)
    cfg = load_config(None, ["data.name=imagefolder", f"data.root={tmp_path}", "data.style=cifar",
                             "data.native_size=40", "data.mean=[0.4,0.4,0.4]", "data.std=[0.3,0.3,0.3]",
                             "data.train_size=null", "data.test_size=null"])
    data = DataBundle(cfg)
    assert (data.info.style, data.info.native_resolution, data.mean, data.std) == (
        "cifar", 40, (0.4, 0.4, 0.4), (0.3, 0.3, 0.3))
    img, _ = data.train_set[4]
    assert img.size == (40, 40)  # every photo resized to the native side, then pad-crop-flip as on CIFAR
    from mixsize_ray.data.presets import DataPreset

    assert data.preset == DataPreset("cifar", 40, (0.4, 0.4, 0.4), (0.3, 0.3, 0.3))
    t = data.preset.transform(24, train=True)
    assert "PadRandomCrop" in repr(t) and "RandomResizedCrop" not in repr(t)
    assert t(img).shape == (3, 24, 24)
    x, _ = next(iter(data.eval_batches(24)))
    assert x.shape == (2, 3, 24, 24)
    auto = DataBundle(load_config(None, ["data.name=imagefolder", f"data.root={tmp_path}"]))
    assert auto.info.style == "imagenet" and "RandomResizedCrop" in repr(auto.preset.transform(24, train=True))
    assert auto.preset == DataPreset("imagenet", None, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
