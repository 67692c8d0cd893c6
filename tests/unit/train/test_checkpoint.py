"""Checkpoints: atomic writes, weights_only loading, corrupt or foreign files named in one line."""

from __future__ import annotations

import os

import pytest
import torch

from mixsize_ray.atomic import atomic_write_bytes
from mixsize_ray.errors import ConfigError
from mixsize_ray.train.checkpoint import STATE_FILE, load_checkpoint, save_checkpoint


class Evil:
    """A class torch.load(weights_only=True) must refuse to rebuild."""


def test_roundtrip(tmp_path):
    state = {"model": {"w": torch.arange(4.0)}, "epoch": 3, "config": {"regime": {"sizes": [16, 32]}}}
    save_checkpoint(tmp_path, state, config_yaml="regime: {}\n")
    back = load_checkpoint(tmp_path)
    assert torch.equal(back["model"]["w"], torch.arange(4.0)) and back["epoch"] == 3
    assert (tmp_path / "config.yaml").read_text() == "regime: {}\n"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_corrupt_and_truncated_files_are_named(tmp_path):
    save_checkpoint(tmp_path, {"epoch": 1})
    f = tmp_path / STATE_FILE
    f.write_bytes(f.read_bytes()[:-10])  # truncated: checksum mismatch
    with pytest.raises(ConfigError, match="corrupt or partial") as err:
        load_checkpoint(tmp_path)
    assert str(f) in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(ConfigError, match=str(f)):
        load_checkpoint(tmp_path)


def test_foreign_file_rejected(tmp_path):
    torch.save({"something": 1}, tmp_path / STATE_FILE)
    with pytest.raises(ConfigError, match="not a mixsize-ray checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / "x.pt").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="x.pt"):
        load_checkpoint(tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="checkpoint folder"):
        load_checkpoint(tmp_path / "nope")


def test_pickled_code_is_refused(tmp_path):
    # weights_only=True: an arbitrary object in the file is not executed/loaded
    save_dir = tmp_path / "evil"
    save_dir.mkdir()
    torch.save({"format": "mixsize-ray/checkpoint/v1", "obj": Evil()}, save_dir / STATE_FILE)
    with pytest.raises(ConfigError):
        load_checkpoint(save_dir)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
