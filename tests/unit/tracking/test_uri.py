"""Tracking URI resolution, the supported stores, and the preflight reachability check."""

from __future__ import annotations

import socket

import pytest

from mixsize_ray.config import load_config
from mixsize_ray.errors import ConfigError
from mixsize_ray.tracking.uri import artifact_location, check_reachable, resolve_tracking_uri, sqlite_path


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_default_is_sqlite_in_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, cwd=tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_config_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5005")
    assert resolve_tracking_uri(None) == "http://127.0.0.1:5005"
    assert resolve_tracking_uri("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    assert resolve_tracking_uri("sqlite:///rel/x.db", cwd=tmp_path) == f"sqlite:///{tmp_path}/rel/x.db"


def test_sqlite_artifacts_beside_the_database():
    assert sqlite_path("sqlite:////data/m.db").as_posix() == "/data/m.db"
    assert artifact_location("sqlite:////data/m.db") == "file:///data/mlartifacts"
    assert sqlite_path("http://127.0.0.1:5000") is None and artifact_location("http://h:1") is None


@pytest.mark.parametrize(
    "override, field",
    [
        ("tracking.uri=./mlruns", "tracking.uri"),
        ("tracking.uri=file:///tmp/mlruns", "tracking.uri"),
        ("tracking.model_format=onnx", "tracking.model_format"),
        ("tracking.parent_run_id=not-a-run", "tracking.parent_run_id"),
        ("tracking.retries=0", "tracking.retries"),
        ("tracking.timeout_s=0", "tracking.timeout_s"),
        ("tracking.experiment=' '", "tracking.experiment"),
        ("tracking.run_name=''", "tracking.run_name"),
        ("tracking.register_model=''", "tracking.register_model"),
    ],
)
def test_invalid_tracking_config_is_one_line(override, field):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert e.value.field == field and "\n" not in str(e.value)


def test_valid_tracking_config():
    cfg = load_config(None, ["tracking.uri=postgresql+psycopg2://u@h/db", "tracking.parent_run_id=" + "0f" * 16,
                             "tracking.model_format=pt2", "tracking.register_model=mixsize"])
    assert cfg.tracking.model_format == "pt2" and cfg.tracking.enabled


@pytest.mark.timeout(60)  # a hang guard: the check's own timeout is 2 s
def test_unreachable_server_names_the_uri():
    uri = f"http://127.0.0.1:{_dead_port()}"
    with pytest.raises(ConfigError) as e:
        check_reachable(uri, timeout_s=2)
    assert e.value.field == "tracking.uri" and uri in str(e.value) and "reachable" in str(e.value)


def test_sqlite_in_an_unwritable_place_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="tracking.uri.*writable"):
        check_reachable(f"sqlite:///{blocker}/sub/mlflow.db")
    check_reachable(f"sqlite:///{tmp_path}/ok/mlflow.db")  # folder created, no error
