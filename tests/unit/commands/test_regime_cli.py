"""CLI: regime table/JSON, exit code 2 and one line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mixsize_ray.cli import main

ROOT = Path(__file__).resolve().parents[3]


def test_regime_json(capsys):
    assert main(["regime", str(ROOT / "search_spaces/cifar_s28_bplus.yaml"), "--json", "--world-size", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["batch"] for e in doc["entries"]] == [40, 64, 114, 256]
    assert doc["world_size"] == 2
    for key in ("mean_size", "steps_per_epoch", "baseline_steps_per_epoch"):
        assert key in doc


def test_regime_text(capsys):
    assert main(["regime", str(ROOT / "search_spaces/cifar_s28_dplus.yaml")]) == 0
    out = capsys.readouterr().out
    assert "fine-tuned" in out and "steps/epoch" in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["regime", "search_spaces/cifar_s28_bplus.yaml", "--set", "regime.mode=Z"], "regime.mode"),
        (["regime", "search_spaces/cifar_s28_bplus.yaml", "--world-size", "0"], "--world-size"),
        (["regime", "search_spaces/cifar_s28_bplus.yaml", "--world-size", "3"], "regime.base_batch"),
        (["regime", "nope.yaml"], "config"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, needle):
    proc = subprocess.run([sys.executable, "-m", "mixsize_ray.cli", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("mixsize-ray: error:")
    assert proc.stdout == ""


def test_regime_json_reports_lr_scale_per_entry(capsys):
    assert main(["regime", str(ROOT / "search_spaces/imagenet_s144_bplus.yaml"), "--json", "--world-size", "4"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["batch"] for e in doc["entries"]] == [196, 256, 784, 1392]
    assert [round(e["lr_scale"], 4) for e in doc["entries"]] == [round(794 / 256, 4)] * 4
    assert round(doc["mean_lr_scale"], 2) == 3.10 and doc["lr_scaling"] == {"rule": "linear", "by": "mean"}
    assert main(["regime", str(ROOT / "search_spaces/cifar_s28_bplus.yaml"), "--json", "--set",
                 "optim.lr_scaling=sqrt", "--set", "optim.lr_scaling_by=step"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [round(e["lr_scale"], 4) for e in doc["entries"]] == [round((b / 64) ** 0.5, 4) for b in (41, 64, 114, 256)]


def test_regime_counts_the_images_of_an_imagefolder(tmp_path, capsys):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        (tmp_path / "val" / cls).mkdir(parents=True)
        for k in range(5 if cls == "a" else 2):
            Image.new("RGB", (48, 48)).save(tmp_path / "train" / cls / f"{k}.png")
    assert main(["regime", str(ROOT / "search_spaces/imagenet_s144_bplus.yaml"), "--json",
                 "--set", f"data.root={tmp_path}"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["num_images"] == 7  # not ImageNet's 1,281,167
