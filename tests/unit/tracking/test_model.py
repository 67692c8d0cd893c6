"""The model in MLflow's PyTorch flavour carries its per-size BN statistics and predicts at any size with
the right ones: pickle (SizeAwareModel) and pt2 (in-graph switch), logged directly or from the spool."""

from __future__ import annotations

import copy
import os
import socket

import pytest
import torch

from mixsize_ray.core.calibration import SizeAwareModel, calibrate_sizes
from mixsize_ray.models import build_model
from mixsize_ray.tracking import model as tm
from mixsize_ray.tracking.spool import Spool, replay
from mixsize_ray.tracking.tracker import RunTracker


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    net = build_model("resnet20", 10)
    cache = calibrate_sizes(net, [16, 32, 48], lambda s: [torch.randn(8, 3, s, s) * (s / 16) + s / 32],
                            num_batches=1)
    return net, cache


def _reference(net, cache, size, x):
    m = copy.deepcopy(net).eval()
    cache.apply(m, size)
    with torch.no_grad():
        return m(x)


def _load(uri, model_uri):
    import mlflow.pytorch

    with tm.tracking_uri(uri):
        return mlflow.pytorch.load_model(model_uri)


@pytest.mark.parametrize("fmt", ["pickle", "pt2"])
def test_logged_model_predicts_with_each_sizes_statistics(fmt, trained, sqlite_store):
    uri, client, exp = sqlite_store
    net, cache = trained
    run_id = client.create_run(exp).info.run_id
    info = tm.log_model(tm.inference_model(net, cache, fmt), run_id, uri, fmt=fmt, example_size=32)
    loaded = _load(uri, info.model_uri)
    if fmt == "pickle":
        assert isinstance(loaded, SizeAwareModel) and loaded.cache.sizes == [16, 32, 48]
        loaded.eval()
    assert client.get_run(run_id).outputs.model_outputs[0].model_id == info.model_id
    # the model belongs to the run's experiment (and its artifact folder), not the Default experiment
    logged = client.get_logged_model(info.model_id)
    assert logged.experiment_id == exp
    assert logged.artifact_location.startswith(client.get_experiment(exp).artifact_location)
    for size in (16, 48):
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            out = loaded(x)
        assert out.shape == (2, 10)
        assert torch.allclose(out, _reference(net, cache, size, x), atol=1e-5)
        assert not torch.allclose(out, _reference(net, cache, 32, x), atol=1e-3)  # not one size's stats


def test_registration_under_a_name(trained, sqlite_store):
    uri, client, exp = sqlite_store
    net, cache = trained
    run_id = client.create_run(exp).info.run_id
    info = tm.log_model(tm.inference_model(net, cache), run_id, uri, registered_model_name="mixsize-unit")
    assert info.registered_model_version == 1
    assert client.get_model_version("mixsize-unit", "1").run_id == run_id


def test_model_spooled_when_the_server_is_away_then_sent(trained, sqlite_store, tmp_path):
    uri, client, exp = sqlite_store
    net, cache = trained
    run_id = client.create_run(exp).info.run_id
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    t = RunTracker(dead, run_id, tmp_path, retries=1, wait_s=0, timeout_s=1, log=lambda m: None)
    assert not t.log_model(net, cache, example_size=32, step=3)
    (rec,) = Spool(tmp_path).records()
    assert rec["kind"] == "model" and os.path.isfile(os.path.join(rec["path"], "MLmodel"))
    assert replay(tmp_path, uri) == (1, 0)
    out = client.get_run(run_id).outputs.model_outputs
    assert len(out) == 1 and out[0].step == 3
    loaded = _load(uri, f"models:/{out[0].model_id}").eval()
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.allclose(loaded(x), _reference(net, cache, 48, x), atol=1e-5)


def test_tracking_uri_context_restores_the_environment(monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    with tm.tracking_uri("sqlite:////tmp/x.db"):
        assert mlflow.get_tracking_uri() == "sqlite:////tmp/x.db"
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:1"
