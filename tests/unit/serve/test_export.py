"""The exported model of one size: loads in a fresh interpreter WITHOUT mixsize_ray (``python -I``, the package
blocked, from an empty folder) and scores the eval top-1 at that size within 0.1 points; its logits are the
model's with THAT size's BN statistics (not another size's, not the training statistics)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from mixsize_ray.core.calibration import use_size
from mixsize_ray.core.evaluation import evaluate_top_k
from mixsize_ray.errors import ConfigError
from mixsize_ray.serve.export import export_fixed_size, fixed_size_model, read_serving_info
from mixsize_ray.serve.source import load_served, resolve_source
from mixsize_ray.train.data_bundle import DataBundle

SCORE = """
import sys
sys.modules["mixsize_ray"] = None  # the package is installed editable: make any import of it fail
import json, torch
data = torch.load("eval.pt", weights_only=True)
module = torch.export.load(sys.argv[1]).module()
with torch.no_grad():
    logits = torch.cat([module(x) for x in data["images"].split(16)])
    one = module(data["images"][:1])
torch.save(logits, "logits.pt")
top1 = float((logits.argmax(1) == data["labels"]).float().mean())
print(json.dumps({"top1": top1, "batch1": list(one.shape),
                  "mixsize_ray": [m for m in sys.modules if m.startswith("mixsize_ray") and sys.modules[m]]}))
"""


def score_without_package(pt2, images, labels, folder):
    """``(top-1, logits, report)`` of ``pt2`` on the images, computed by ``python -I`` in ``folder``."""
    folder.mkdir(exist_ok=True)
    torch.save({"images": images, "labels": labels}, folder / "eval.pt")
    proc = subprocess.run([sys.executable, "-I", "-c", SCORE, str(pt2)], cwd=folder, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return report["top1"], torch.load(folder / "logits.pt"), report


@pytest.fixture(scope="module")
def served(serve_run):
    run, folder, cfg = serve_run
    return load_served(resolve_source(str(folder)))


def test_exported_model_loads_without_the_package_and_reproduces_the_eval_top1(serve_run, served, tmp_path):
    run, folder, cfg = serve_run
    size = 24
    pt2 = export_fixed_size(fixed_size_model(served.model, served.cache, size), size, tmp_path / "serve-24.pt2",
                            {"top1": 0.5})
    batches = list(DataBundle(cfg).eval_batches(size))
    images, labels = torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])

    eager = fixed_size_model(served.model, served.cache, size)  # eval top-1 at 24, computed here
    want = evaluate_top_k(eager, batches)["top1"]
    sweep = {r["size"]: r for r in json.loads((folder / "sweep.json").read_text())["sizes"]}
    assert want == pytest.approx(sweep[size]["top1_calibrated"], abs=1e-9)  # the same protocol as the curve

    top1, logits, report = score_without_package(pt2, images, labels, tmp_path / "clean")
    assert report["mixsize_ray"] == [] and report["batch1"] == [1, 10]
    assert abs(100 * top1 - 100 * want) <= 0.1
    with torch.no_grad():
        assert torch.allclose(logits, eager(images), atol=1e-4)
        other = fixed_size_model(served.model, served.cache, 16)  # another size's statistics
        own = served.model.eval()  # the training statistics
        assert not torch.allclose(logits, other(images), atol=1e-3)
        assert not torch.allclose(logits, own(images), atol=1e-3)
    assert read_serving_info(pt2) == {**read_serving_info(pt2), "size": 24, "top1": 0.5}


def test_fixed_size_model_refuses_an_uncalibrated_size_and_leaves_the_model_alone(served):
    before = {k: v.clone() for k, v in served.model.state_dict().items()}
    with pytest.raises(ConfigError, match=r"size: expected one of the calibrated sizes \[16, 24, 32\]"):
        fixed_size_model(served.model, served.cache, 28)
    fixed = fixed_size_model(served.model, served.cache, 32)
    assert not fixed.training
    after = served.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    ref = fixed_size_model(served.model, None, 32)
    use_size(ref, served.cache, 32, exact=True)
    assert all(torch.equal(a, b) for a, b in zip(fixed.state_dict().values(), ref.state_dict().values(), strict=True))
