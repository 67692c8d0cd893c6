"""Logging is idempotent per (run, key, step): a retried epoch (a worker killed after its MLflow write but
before its checkpoint was reported), a second end-of-run sweep or model are not logged twice, and a model
left PENDING by a kill mid-upload is removed."""

from __future__ import annotations

import torch

from mixsize_ray.core.calibration import calibrate_sizes
from mixsize_ray.models import build_model
from mixsize_ray.tracking.model import MODEL_NAME
from mixsize_ray.tracking.tracker import RunTracker


def _tracker(uri, run_id, tmp_path, logs):
    return RunTracker(uri, run_id, tmp_path / "spool", retries=1, wait_s=0, log=logs.append)


def _history(client, run_id, key):
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_a_retried_epoch_is_logged_once(sqlite_store, tmp_path):
    uri, client, exp = sqlite_store
    run_id = client.create_run(exp).info.run_id
    logs: list[str] = []
    first = _tracker(uri, run_id, tmp_path, logs)
    first.log_epoch({"epoch": 0, "loss": 2.0, "val_top1": 0.1})
    first.log_epoch({"epoch": 1, "loss": 1.5, "val_top1": 0.3})
    # the worker dies before epoch 1's checkpoint is reported: a new worker re-runs epoch 1, then epoch 2
    again = _tracker(uri, run_id, tmp_path, logs)
    assert again.log_epoch({"epoch": 1, "loss": 1.5, "val_top1": 0.3})
    again.log_epoch({"epoch": 2, "loss": 1.0, "val_top1": 0.6})
    assert _history(client, run_id, "train/loss") == [(0, 2.0), (1, 1.5), (2, 1.0)]
    assert _history(client, run_id, "val/top1") == [(0, 0.1), (1, 0.3), (2, 0.6)]
    assert any("epoch 1 is already in run" in m for m in logs)


def test_the_curve_is_logged_once(sqlite_store, tmp_path):
    uri, client, exp = sqlite_store
    run_id = client.create_run(exp).info.run_id
    doc = {"sizes": [{"size": s, "top1": s / 100, "top5": 1.0, "top1_calibrated": None, "top5_calibrated": None,
                      "gflops": 0.01 * s, "top1_per_gflop": 1.0} for s in (16, 32)]}
    for _ in range(2):
        _tracker(uri, run_id, tmp_path, []).log_sweep(doc, [], epoch=3)
    assert _history(client, run_id, "accuracy_vs_size/top1") == [(16, 0.16), (32, 0.32)]
    assert _history(client, run_id, "at_size/top1_32") == [(3, 0.32)]


def test_an_orphan_pending_model_is_removed_and_the_model_logged_once(sqlite_store, tmp_path):
    uri, client, exp = sqlite_store
    run_id = client.create_run(exp).info.run_id
    orphan = client.create_logged_model(exp, name=MODEL_NAME, source_run_id=run_id)  # killed mid-upload
    torch.manual_seed(0)
    net = build_model("resnet8", 10)
    cache = calibrate_sizes(net, [16, 32], lambda s: [torch.randn(4, 3, s, s)], num_batches=1)
    for _ in range(2):
        assert _tracker(uri, run_id, tmp_path, []).log_model(net, cache, example_size=32)
    models = client.search_logged_models([exp], filter_string=f"source_run_id = '{run_id}'")
    assert [str(m.status).rsplit(".", 1)[-1] for m in models] == ["READY"]
    assert orphan.model_id not in {m.model_id for m in models}
