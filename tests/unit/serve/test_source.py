"""RUN_OR_CHECKPOINT to a checkpoint and its curve: a run folder's newest checkpoint with a sweep, a
state.pt, bad paths refused in one line; the curve computed now equals the end-of-run sweep."""

from __future__ import annotations

import json

import pytest

from mixsize_ray.errors import ConfigError
from mixsize_ray.serve.source import SWEEP_FILE, load_curve, load_served, resolve_source
from mixsize_ray.train.checkpoint import save_checkpoint


def test_a_run_folder_resolves_to_its_newest_checkpoint_with_a_sweep(tmp_path):
    for name in ("checkpoint_1", "checkpoint_2", "checkpoint_3"):
        save_checkpoint(tmp_path / name, {"epoch": 0})
    (tmp_path / "checkpoint_4").mkdir()  # incomplete (no state.pt): skipped
    assert resolve_source(str(tmp_path)).checkpoint.name == "checkpoint_3"  # no sweep anywhere: the newest
    (tmp_path / "checkpoint_2" / SWEEP_FILE).write_text("{}")
    src = resolve_source(str(tmp_path))
    assert src.checkpoint.name == "checkpoint_2" and src.sweep_json == tmp_path / "checkpoint_2" / SWEEP_FILE
    assert resolve_source(str(tmp_path / "checkpoint_3" / "state.pt")).checkpoint.name == "checkpoint_3"
    assert resolve_source(str(tmp_path / "checkpoint_3")).sweep_json is None


@pytest.mark.parametrize("make", ["missing", "empty folder", "other file"])
def test_what_is_not_a_checkpoint_is_refused(tmp_path, make):
    target = tmp_path / "x"
    if make == "empty folder":
        target.mkdir()
    elif make == "other file":
        target.write_text("hello")
    with pytest.raises(ConfigError, match="^RUN_OR_CHECKPOINT: expected a checkpoint folder"):
        resolve_source(str(target))


def test_the_curve_computed_now_equals_the_end_of_run_sweep(serve_run):
    run, folder, cfg = serve_run
    src = resolve_source(str(run))
    assert src.checkpoint == folder
    saved = load_curve(src)
    assert saved.origin == SWEEP_FILE and [r.size for r in saved.rows] == [16, 24, 32]
    now = load_curve(src, sizes="16,32")
    assert now.origin == "evaluated now" and now.cache is not None and now.cache.sizes == [16, 24, 32]
    by_size = {r.size: r for r in saved.rows}
    for r in now.rows:
        assert r.top1_calibrated == pytest.approx(by_size[r.size].top1_calibrated, abs=1e-9)
        assert r.gflops == pytest.approx(by_size[r.size].gflops)
    served = load_served(src)
    assert served.cache.sizes == [16, 24, 32] and not served.model.training


def test_an_unreadable_sweep_is_refused(serve_run, tmp_path):
    run, folder, cfg = serve_run
    import shutil

    copy = shutil.copytree(folder, tmp_path / "checkpoint_x")
    (copy / SWEEP_FILE).write_text(json.dumps({"not": "a sweep"}))
    with pytest.raises(ConfigError, match="^sweep.json"):
        load_curve(resolve_source(str(copy)))
