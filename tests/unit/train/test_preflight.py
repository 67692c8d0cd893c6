"""The driver's preflight: a typed result, the regime solved once from the real dataset, refusals that
create nothing, and resume decisions read from the checkpoint's small metadata."""

from __future__ import annotations

import pytest
import torch

from mixsize_ray.config import load_config
from mixsize_ray.core import regime as regime_mod
from mixsize_ray.errors import ConfigError
from mixsize_ray.train.checkpoint import save_checkpoint
from mixsize_ray.train.preflight import Preflight, preflight

SPACE = "search_spaces/cifar_s28_dplus.yaml"


@pytest.fixture
def sets(tmp_path, monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parents[3])
    monkeypatch.setenv("MIXSIZE_RAY_DATA_DIR", str(tmp_path / "data"))
    return ["tracking.enabled=false", "data.train_size=640", "ray.num_workers=2", "train.name=pf",
            f"train.output_dir={tmp_path / 'out' / 'runs'}"]


def test_preflight_is_typed_and_solves_for_the_real_run(sets, tmp_path):
    p = preflight(load_config(SPACE, sets))
    assert isinstance(p, Preflight)
    assert (p.table.num_images, p.table.world_size, p.table.mode) == (640, 2, "D+")
    # S(28) D+ at B0=64, D0=1 on 2 workers: D can not drop below 1 at 40 px, so B does (40^2*40 ~ 32^2*64);
    # B stays a multiple of the world size 2 (56 at 24 px)
    assert [(e.size, e.batch, e.duplicates) for e in p.table.entries] == [(40, 40, 1), (32, 64, 1), (24, 56, 2),
                                                                          (16, 64, 4)]
    assert p.run_dir == str(tmp_path / "out" / "runs" / "pf") and p.resume is None and p.tracking_uri is None
    assert not (tmp_path / "out").exists()  # nothing is created before the run starts


def test_the_regime_is_solved_once_per_process(sets, monkeypatch, tmp_path):
    import mixsize_ray.train.preflight as preflight_mod
    from mixsize_ray.train.preview import write_loader_preview

    monkeypatch.setattr(preflight_mod, "_SOLVED", {})
    calls = []
    solve = regime_mod.SizeRegime.solve
    monkeypatch.setattr(regime_mod.SizeRegime, "solve", lambda self: calls.append(self.num_images) or solve(self))
    cfg = load_config(SPACE, [*sets, "data.num_workers=0"])  # validation checks the fields only
    first = preflight(cfg)
    write_loader_preview(cfg, tmp_path / "preview.png", max_steps=8)  # the demo's preview: the same table
    assert preflight(cfg).table is first.table
    assert calls == [640]
    preflight(load_config(SPACE, [*sets, "ray.num_workers=1"]))  # another world size is another table
    assert calls == [640, 640]


def test_a_regime_that_misses_the_budget_is_refused_at_preflight(sets):
    cfg = load_config(SPACE, [*sets, "regime.sizes=[40,32,24,17]", "regime.tolerance=0.0"])
    with pytest.raises(ConfigError, match="regime"):
        preflight(cfg)


def test_refusals_create_nothing(sets, tmp_path):
    cfg = load_config(SPACE, [*sets, "tracking.enabled=true", "tracking.uri=http://127.0.0.1:9",
                              "tracking.timeout_s=1"])
    with pytest.raises(ConfigError, match="tracking"):
        preflight(cfg)
    assert not (tmp_path / "out").exists()
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigError, match="ray.storage_path.*not a folder"):
        preflight(load_config(SPACE, [*sets, f"train.output_dir={tmp_path / 'afile' / 'runs'}"]))


def _checkpoint(cfg, epoch, run_id="0" * 32):
    folder = f"{cfg.train.output_dir}/{cfg.train.name}/checkpoint_2026-01-01_00-00-0{epoch}.000000"
    save_checkpoint(folder, {"model": {"w": torch.zeros(1)}, "epoch": epoch, "step": 0, "mlflow_run_id": run_id,
                             "metrics": {"val_top1": 0.75}}, config_yaml=cfg.to_yaml())


def test_resume_reads_the_run_id_and_progress_from_the_manifest(sets):
    cfg = load_config(SPACE, [*sets, "train.epochs=3"])
    _checkpoint(cfg, epoch=1, run_id="a" * 32)
    p = preflight(cfg)
    assert (p.resume.epoch, p.resume.mlflow_run_id) == (1, "a" * 32)
    assert not p.completed(cfg.train.epochs)
    _checkpoint(cfg, epoch=2)
    p = preflight(cfg)
    assert p.completed(cfg.train.epochs) and p.resume.metrics == {"val_top1": 0.75}


def test_resume_with_a_different_config_is_refused(sets):
    cfg = load_config(SPACE, sets)
    _checkpoint(cfg, epoch=0)
    with pytest.raises(ConfigError) as e:
        preflight(load_config(SPACE, [*sets, "optim.lr=0.2"]))
    assert "train.name" in str(e.value) and "optim.lr: 0.1 -> 0.2" in str(e.value)
