"""`mixsize-ray pick --register NAME`: the model in a real (sqlite) MLflow Model Registry under the alias
serve-<size>, logged to the checkpoint's own run with the choice, and loading back to the exported model."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from mixsize_ray.cli import main
from mixsize_ray.errors import ConfigError
from mixsize_ray.serve.registry import Registration


def test_register_puts_the_picked_model_under_its_alias_and_logs_the_choice_to_the_run(serve_run, tmp_path,
                                                                                      monkeypatch):
    import mlflow
    import mlflow.pytorch

    run, folder, cfg = serve_run
    monkeypatch.chdir(tmp_path)  # nothing may land in the working folder (mlruns/)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    (tmp_path / "store").mkdir()
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("train", artifact_location=(tmp_path / "store" / "art").as_uri())
    train_run = client.create_run(exp).info.run_id
    ckpt = shutil.copytree(folder, tmp_path / "checkpoint_1")
    manifest = json.loads((ckpt / "manifest.json").read_text())
    (ckpt / "manifest.json").write_text(json.dumps({**manifest, "mlflow_run_id": train_run}))

    rc = main(["pick", str(ckpt), "--within", "100", "--no-verify", "--repeats", "1", "--warmup", "0",
               "--register", "shapes-r20", "--tracking-uri", uri, "--json", str(tmp_path / "p.json")])
    assert rc == 0
    doc = json.loads((tmp_path / "p.json").read_text())
    size = doc["size"]
    version = client.get_model_version_by_alias("shapes-r20", f"serve-{size}")
    assert str(version.version) == "1" and version.run_id == train_run
    assert doc["registered"]["model_uri"] == f"models:/shapes-r20@serve-{size}"
    tags = client.get_run(train_run).data.tags
    assert tags["serve.size"] == str(size) and float(tags["serve.top1"]) == doc["top1"]
    assert tags["serve.constraint"] == "top-1 within 100 points of the best"
    assert float(tags["serve.latency_ms_b1"]) > 0 and float(tags["serve.latency_ms_b32"]) > 0
    path = mlflow.artifacts.download_artifacts(run_id=train_run, artifact_path=f"serve/pick-{size}.json",
                                               dst_path=str(tmp_path / "dl"), tracking_uri=uri)
    logged = json.loads(open(path).read())
    assert logged["size"] == size and logged["registered"]["version"] == "1"

    mlflow.set_tracking_uri(uri)
    try:
        registered = mlflow.pytorch.load_model(f"models:/shapes-r20@serve-{size}")
    finally:
        mlflow.set_tracking_uri(None)
    exported = torch.export.load(str(ckpt / f"serve-{size}.pt2")).module()
    x = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(registered(x), exported(x), atol=1e-5)
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize("name, uri, field", [("", "sqlite:///x.db", "--register"), ("a b", "sqlite:///x.db", "--register"),
                                              ("m", "ftp://host", "--tracking-uri")])
def test_bad_registration_is_refused(name, uri, field):
    with pytest.raises(ConfigError, match=f"^{field}"):
        Registration(name, uri)
