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


# ---- the small metadata a driver reads without the weights -------------------------------------------------

def _ckpt(run_dir, name, epoch, run_id="r1", step=0, config="regime: {sizes: [16, 32]}\n"):
    return save_checkpoint(run_dir / name, {"model": {"w": torch.zeros(2)}, "epoch": epoch, "step": step,
                                            "global_step": 10 * (epoch + 1), "mlflow_run_id": run_id,
                                            "metrics": {"loss": 0.25, "val_top1": 0.5, "name": "x"}},
                           config_yaml=config)


def test_manifest_carries_run_id_epoch_and_numeric_metrics(tmp_path):
    import json

    _ckpt(tmp_path, "checkpoint_a", epoch=4, run_id="abc", step=7)
    m = json.loads((tmp_path / "checkpoint_a" / "manifest.json").read_text())
    assert (m["epoch"], m["step"], m["global_step"], m["mlflow_run_id"]) == (4, 7, 50, "abc")
    assert m["metrics"] == {"loss": 0.25, "val_top1": 0.5}  # strings are left out


def test_latest_checkpoint_info_is_the_newest_complete_one(tmp_path):
    from mixsize_ray.train.checkpoint import latest_checkpoint_info

    run = tmp_path / "run"
    _ckpt(run, "checkpoint_2026-01-01_00-00-01.000000", epoch=0, run_id="old")
    _ckpt(run, "checkpoint_2026-01-01_00-00-02.000000", epoch=1, run_id="new")
    partial = _ckpt(run, "checkpoint_2026-01-01_00-00-03.000000", epoch=2, run_id="partial")
    (partial / "manifest.json").unlink()  # killed before the manifest: not complete
    info = latest_checkpoint_info(str(tmp_path), "run")
    assert (info.epoch, info.mlflow_run_id, info.config) == (1, "new", {"regime": {"sizes": [16, 32]}})
    assert info.path.endswith("checkpoint_2026-01-01_00-00-02.000000")
    assert latest_checkpoint_info(str(tmp_path), "no-such-run") is None


def test_latest_checkpoint_info_reads_a_uri_storage(tmp_path):
    from mixsize_ray.train.checkpoint import latest_checkpoint_info

    _ckpt(tmp_path / "run", "checkpoint_1", epoch=3, run_id="remote")
    info = latest_checkpoint_info(f"file://{tmp_path}", "run")
    assert (info.epoch, info.mlflow_run_id) == (3, "remote")
    assert info.path == f"file://{tmp_path}/run/checkpoint_1"


def test_latest_checkpoint_info_of_an_old_manifest_reads_the_state(tmp_path):
    import json

    from mixsize_ray.train.checkpoint import latest_checkpoint_info

    folder = _ckpt(tmp_path / "run", "checkpoint_1", epoch=5, run_id="legacy")
    m = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({"format": m["format"], "sha256": m["sha256"]}))
    info = latest_checkpoint_info(str(tmp_path), "run")
    assert (info.epoch, info.mlflow_run_id, info.metrics["loss"]) == (5, "legacy", 0.25)


def test_a_corrupt_newest_checkpoint_is_named_and_the_previous_good_one_resumes(tmp_path):
    from mixsize_ray.train.checkpoint import load_good

    run = tmp_path / "run"
    _ckpt(run, "checkpoint_2026-01-01_00-00-01.000000", epoch=0)
    _ckpt(run, "checkpoint_2026-01-01_00-00-02.000000", epoch=1)
    newest = _ckpt(run, "checkpoint_2026-01-01_00-00-03.000000", epoch=2)
    data = (newest / STATE_FILE).read_bytes()
    (newest / STATE_FILE).write_bytes(data[: len(data) // 2])  # torn by a crash of the disk underneath
    state, used, skipped = load_good(newest, run)
    assert state["epoch"] == 1 and used.name.endswith("00-00-02.000000")
    assert len(skipped) == 1 and str(newest / STATE_FILE) in skipped[0] and "corrupt" in skipped[0]
    for p in run.glob("checkpoint_*/state.pt"):
        p.write_bytes(b"x")
    with pytest.raises(ConfigError, match="corrupt"):
        load_good(newest, run)  # nothing good left: the newest one's error


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    import errno

    save_checkpoint(tmp_path, {"epoch": 1, "model": {"w": torch.ones(3)}})
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left on device"):
        save_checkpoint(tmp_path, {"epoch": 2, "model": {"w": torch.zeros(3)}})
    monkeypatch.setattr(os, "fsync", real_fsync)
    back = load_checkpoint(tmp_path)  # the previous checkpoint, whole and verified
    assert back["epoch"] == 1 and torch.equal(back["model"]["w"], torch.ones(3))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
