"""`mixsize-ray eval CHECKPOINT`: the curve (calibrated and not) with GFLOPs as table, JSON and PNG."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mixsize_ray.cli import main
from mixsize_ray.config import load_config
from mixsize_ray.train.checkpoint import STATE_FILE, save_checkpoint
from mixsize_ray.train.loop import TrainingLoop

SETS = ["regime.sizes=[16,32]", "regime.probs=[0.5,0.5]", "regime.mode=B+", "regime.base_batch=32",
        "data.train_size=256", "data.test_size=64", "data.num_workers=0", "train.epochs=1",
        "train.max_steps_per_epoch=3", "train.calibrate_batches=2", "train.sweep_sizes=[16,32]"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import os

    root = tmp_path_factory.mktemp("eval")
    os.environ["MIXSIZE_RAY_DATA_DIR"] = str(root / "data")
    cfg = load_config(None, SETS)
    loop = TrainingLoop(cfg)
    loop.train_epoch()
    loop.calibrate()
    return save_checkpoint(root / "ckpt", loop.state_dict(), config_yaml=cfg.to_yaml())


def test_eval_writes_curve_json_and_plot(checkpoint, tmp_path, capsys):
    out_json, out_png = tmp_path / "curve.json", tmp_path / "curve.png"
    rc = main(["eval", str(checkpoint), "--sizes", "16:32:8", "--json", str(out_json), "--plot", str(out_png)])
    assert rc == 0
    doc = json.loads(out_json.read_text())
    assert [r["size"] for r in doc["sizes"]] == [16, 24, 32]
    for r in doc["sizes"]:
        assert set(r) >= {"size", "top1", "top5", "top1_calibrated", "top5_calibrated", "gflops"}
        assert r["top1_calibrated"] is not None and r["gflops"] > 0
    g = {r["size"]: r["gflops"] for r in doc["sizes"]}
    assert g[32] / g[16] == pytest.approx(4, rel=0.05)  # conv FLOPs scale with S^2
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "top1_cal" in table and "GFLOPs" in table


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--sizes", "0,16"], "--sizes"),
        (["--sizes", "4,16"], "--sizes"),  # below the model's minimum size 8
        (["--calibrate-batches", "0"], "--calibrate-batches"),
    ],
)
def test_eval_bad_input_exit_2(checkpoint, extra, needle):
    proc = subprocess.run([sys.executable, "-m", "mixsize_ray.cli", "eval", str(checkpoint), *extra],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]


def test_eval_corrupt_checkpoint_names_the_file(tmp_path):
    (tmp_path / STATE_FILE).write_bytes(b"not a checkpoint")
    proc = subprocess.run([sys.executable, "-m", "mixsize_ray.cli", "eval", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert str(tmp_path / STATE_FILE) in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_an_unwritable_output_is_refused_before_the_sweep(checkpoint, tmp_path, option):
    proc = subprocess.run([sys.executable, "-m", "mixsize_ray.cli", "eval", str(checkpoint), "--sizes", "16",
                           option, str(tmp_path / "no" / "such" / "dir" / "x")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert option in proc.stderr and "writable folder" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "size" not in proc.stdout  # no table: nothing was evaluated
