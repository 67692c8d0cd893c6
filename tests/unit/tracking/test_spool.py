"""Spool on failure: bounded retries, records kept locally with their files, drained in order on recovery,
sent later by `mixsize-ray mlflow-sync`. Nothing is lost silently."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from mixsize_ray.cli import main
from mixsize_ray.tracking.spool import Spool, replay
from mixsize_ray.tracking.tracker import RunTracker
from tests.unit.tracking.conftest import FlakyClient


def _dead_uri() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _doc():
    return {"sizes": [{"size": s, "top1": a, "top5": 1.0, "top1_calibrated": a, "top5_calibrated": 1.0,
                       "gflops": 0.01 * s, "top1_per_gflop": a / (0.01 * s)} for s, a in ((16, 0.4), (32, 0.8))]}


def _files(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps(_doc()))
    (tmp_path / "sweep.png").write_bytes(b"\x89PNG fake")
    return [tmp_path / "sweep.json", tmp_path / "sweep.png"]


def test_dead_server_spools_with_one_warning(tmp_path):
    lines: list[str] = []
    uri = _dead_uri()
    t = RunTracker(uri, "0" * 32, tmp_path / "spool", retries=2, wait_s=0.01, timeout_s=1, log=lines.append)
    assert t.log_epoch({"epoch": 0, "loss": 2.0}) is False
    assert t.log_epoch({"epoch": 1, "loss": 1.5}) is False
    files = _files(tmp_path)
    assert t.log_sweep(_doc(), files, epoch=1) is False
    for f in files:
        f.unlink()  # the worker's temp folder goes away: the spool holds copies
    recs = Spool(tmp_path / "spool").records()
    assert [r["kind"] for r in recs] == ["metrics", "metrics", "metrics", "artifact", "artifact"]
    assert all(r["run_id"] == "0" * 32 and r["uri"] == uri for r in recs)
    assert recs[0]["metrics"] == [["train/loss", 2.0, 0, recs[0]["metrics"][0][3]]]
    assert all(open(r["path"], "rb").read() for r in recs if r["kind"] == "artifact")
    warnings = [m for m in lines if "cannot log" in m]
    assert len(warnings) == 1 and uri in warnings[0] and "spool.jsonl" in warnings[0]
    assert t.close() == 5
    assert "5 records could not be sent" in lines[-1] and "mixsize-ray mlflow-sync" in lines[-1]


def test_recovery_drains_the_spool_in_order(tmp_path, sqlite_store):
    uri, client, exp = sqlite_store
    run_id = client.create_run(exp).info.run_id
    flaky = FlakyClient(client)
    lines: list[str] = []
    t = RunTracker(uri, run_id, tmp_path / "spool", retries=3, wait_s=0.01, client=flaky, log=lines.append)
    assert t.log_epoch({"epoch": 0, "loss": 3.0})
    flaky.down = True
    calls = flaky.calls
    assert not t.log_epoch({"epoch": 1, "loss": 2.0})
    assert flaky.calls - calls == 3  # bounded retries while online
    calls = flaky.calls
    assert not t.log_sweep(_doc(), _files(tmp_path), epoch=1)
    assert flaky.calls - calls <= 3  # offline: one try per call (the spool first), no retry storm
    assert t.offline and t.pending() == 4  # epoch 1, the curve, two files
    flaky.down = False
    assert t.log_epoch({"epoch": 2, "loss": 1.0})
    assert not t.offline and t.pending() == 0 and not Spool(tmp_path / "spool").path.exists()
    assert any("reachable again; sent 4" in m for m in lines)
    hist = client.get_metric_history(run_id, "train/loss")
    assert [(m.step, m.value) for m in hist] == [(0, 3.0), (1, 2.0), (2, 1.0)]
    assert [m.step for m in client.get_metric_history(run_id, "accuracy_vs_size/top1")] == [16, 32]
    assert {f.path for f in client.list_artifacts(run_id)} >= {"sweep.json", "sweep.png"}
    assert t.close() == 0


def test_mlflow_sync_sends_a_spool_later(tmp_path, sqlite_store, capsys):
    uri, client, exp = sqlite_store
    run_id = client.create_run(exp).info.run_id
    t = RunTracker(_dead_uri(), run_id, tmp_path / "spool", retries=1, wait_s=0, timeout_s=1, log=lambda m: None)
    t.log_epoch({"epoch": 0, "val_top1": 0.25})
    t.log_sweep(_doc(), _files(tmp_path), epoch=0)
    assert main(["mlflow-sync", str(tmp_path / "spool"), "--uri", uri]) == 0
    assert "sent 4 records; 0 left" in capsys.readouterr().out
    assert client.get_metric_history(run_id, "val/top1")[0].value == 0.25
    assert client.get_run(run_id).data.metrics["at_size/top1_32"] == 0.8
    assert replay(tmp_path / "spool", uri) == (0, 0)


def test_mlflow_sync_refuses_a_folder_without_spool(tmp_path, capsys):
    assert main(["mlflow-sync", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mixsize-ray: error: spool:") and "\n" not in err


def test_replay_stops_at_the_first_failure_and_keeps_the_rest(tmp_path):
    spool = Spool(tmp_path)
    for i in range(3):
        spool.add({"kind": "metrics", "run_id": "r", "uri": _dead_uri(), "metrics": [["x", i, i, 0]]})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        assert replay(tmp_path) == (0, 3)
    assert len(spool) == 3


class _ArtifactSink:
    """Accepts artifacts, except those whose file name is in ``refuse`` (that delivery fails)."""

    def __init__(self, refuse=()):
        self.refuse, self.got = set(refuse), []

    def log_artifact(self, run_id, path, artifact_path=None):
        if Path(path).name in self.refuse:
            raise ConnectionError("server down (test)")
        self.got.append(Path(path).read_bytes())


def test_replay_removes_the_copies_it_delivered_and_keeps_the_rest(tmp_path):
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir)
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_text(name)
        spool.add({"kind": "artifact", "run_id": "r", "uri": "u", "path": spool.keep(tmp_path / name)})
    assert len(list((spool_dir / "files").iterdir())) == 3
    stranger = spool_dir / "files" / "added-meanwhile"  # a copy no replayed record names: left alone
    stranger.mkdir()

    sink = _ArtifactSink(refuse={"b.txt"})
    assert replay(spool_dir, uri="u", client=sink) == (1, 2)
    assert sink.got == [b"a.txt"]
    left = sorted(p.name for p in (spool_dir / "files").iterdir())
    kept = {Path(r["path"]).parent.name for r in spool.records()}
    assert left == sorted([*kept, "added-meanwhile"]) and len(kept) == 2  # a's copy gone, b's and c's kept

    stranger.rmdir()
    assert replay(spool_dir, uri="u", client=_ArtifactSink()) == (2, 0)
    assert not (spool_dir / "files").exists() and not spool.path.exists()  # nothing left behind
