"""DataBundle: the config's one rule for each batch source (training loader, evaluation, BN calibration)."""

from __future__ import annotations

import pytest
import torch

from mixsize_ray.config import load_config
from mixsize_ray.data.loader import CalibrationDraw, LoaderWorkers
from mixsize_ray.train.data_bundle import DataBundle
from tests.unit.data.steps import Step

BASE = ["data.train_size=48", "data.test_size=20", "train.calibrate_batches=3", "train.eval_batch_size=8"]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXSIZE_RAY_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.mark.parametrize("base_batch, seed, rank, want", [
    (32, 0, 0, CalibrationDraw(32, 3, seed=0)),
    (512, 2, 1, CalibrationDraw(256, 3, seed=2001)),  # at most 256 images; seed train.seed * 1000 + rank
    (256, 7, 3, CalibrationDraw(256, 3, seed=7003)),
])
def test_the_calibration_rule(data_dir, base_batch, seed, rank, want):
    data = DataBundle(load_config(None, [*BASE, f"regime.base_batch={base_batch}", f"train.seed={seed}"]))
    assert data.calibration_draw(rank) == want


def test_calibration_source_is_the_presets_with_the_rule(data_dir):
    data = DataBundle(load_config(None, [*BASE, "regime.base_batch=8", "train.seed=1"]))
    got = list(data.calibration_source(24, rank=1))
    want = list(data.preset.calibration_source(data.train_set, CalibrationDraw(8, 3, seed=1001))(24))
    assert len(got) == 3 and all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    other_rank = list(data.calibration_source(24, rank=0))
    assert not torch.equal(got[0], other_rank[0])
    assert all(torch.equal(a, b) for a, b in zip(data.calibration_source(24, rank=1), got, strict=True))


def test_eval_and_train_loaders_follow_the_config(data_dir):
    data = DataBundle(load_config(None, [*BASE, "train.seed=5", "data.num_workers=0"]))
    batches = list(data.eval_batches(16))
    assert [x.shape for x, _ in batches] == [(8, 3, 16, 16)] * 2 + [(4, 3, 16, 16)]
    steps = [Step(16, 4, 1, [1, 2, 3, 4], 0)]
    (a,) = list(data.train_loader(lambda: steps, pin_memory=False))
    (b,) = list(data.preset.train_loader(data.train_set, lambda: steps, workers=LoaderWorkers(0), seed=5))
    assert torch.equal(a.images, b.images) and a.images.shape == (4, 3, 16, 16)
