"""tune.dashboard: a search folder's study is found and opened without creating anything; every bad folder,
storage or address is one ConfigError before a socket binds; the server stops and frees its port."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import urllib.request
from pathlib import Path

import pytest

from mixsize_ray.errors import ConfigError
from mixsize_ray.tune.dashboard import META, bind, dashboard_url, load_target, serve
from tests.optuna_search import STUDY, assert_port_closed, make_search


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def search(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("search")
    make_search(folder, trials=3)
    return folder


def test_meta_is_the_search_drivers_file_name():
    from mixsize_ray.tune import search

    assert META == search.META


def test_load_target_finds_the_study_and_creates_nothing(search):
    before = _tree(search)
    target = load_target(search)
    try:
        assert (target.study_name, target.study_id) == (STUDY, 1)
        assert target.storage_url == f"sqlite:///{search / 'optuna.db'}"
        assert len(target.storage.get_all_trials(target.study_id)) == 3
    finally:
        target.storage.remove_session()
    assert _tree(search) == before


def test_a_moved_search_folder_uses_its_own_database(tmp_path):
    make_search(tmp_path / "on-the-cluster", trials=1)
    moved = Path(shutil.move(tmp_path / "on-the-cluster", tmp_path / "copied-here"))
    target = load_target(moved)  # search.json still names the old path; the database moved with the folder
    target.storage.remove_session()
    assert target.storage_url == f"sqlite:///{moved / 'optuna.db'}"


def _meta(**fields) -> str:
    return json.dumps({"study_name": STUDY, "storage_url": "sqlite:///{db}", **fields})


BAD = {  # id: (files in the folder: name -> text, with {db} = the real study's database; expected fragment)
    "no-search-json": ({}, "a search folder holding search.json"),
    "search-json-not-json": ({META: "{not json"}, "a readable JSON file"),
    "search-json-not-utf8": ({META: b"\xff\xfe{"}, "a readable JSON file"),
    "search-json-a-list": ({META: "[1, 2]"}, "a JSON object with study_name and storage_url"),
    "search-json-no-storage": ({META: json.dumps({"study_name": STUDY})}, "study_name and storage_url"),
    "storage-file-gone": ({META: _meta(storage_url="sqlite:////nonexistent/optuna.db")}, "no such file"),
    "storage-in-memory": ({META: _meta(storage_url="sqlite://")}, "in-memory database"),
    "storage-not-a-database": ({META: _meta(storage_url="sqlite:///{here}/optuna.db"), "optuna.db": "garbage"},
                               "an Optuna database that can be opened"),
    "storage-not-a-url": ({META: _meta(storage_url="optuna.db")}, "an Optuna database that can be opened"),
    "storage-server-down": ({META: _meta(storage_url="postgresql://u:secret@127.0.0.1:9/db")},
                            "got 'postgresql://u:***@127.0.0.1:9/db'"),  # the password is not printed
    "study-not-in-storage": ({META: _meta(study_name="other")}, "search.json study_name: expected a study in"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_search_folder_is_one_config_error_and_creates_nothing(case, search, tmp_path):
    files, fragment = BAD[case]
    folder = tmp_path / "s"
    folder.mkdir()
    for name, text in files.items():
        if isinstance(text, str):
            text = text.replace("{db}", str(search / "optuna.db")).replace("{here}", str(folder)).encode()
        (folder / name).write_bytes(text)
    before, before_search = _tree(tmp_path), _tree(search)
    with pytest.raises(ConfigError) as err:
        load_target(folder)
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert _tree(tmp_path) == before and _tree(search) == before_search


def test_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="SEARCH_DIR: expected an existing search folder"):
        load_target(tmp_path / "nope")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["port-in-use", "host-not-here", "host-unknown"])
def test_bind_refuses_a_busy_port_or_a_foreign_host(where, search):
    target = load_target(search)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        host, port = {"port-in-use": ("127.0.0.1", busy.getsockname()[1]), "host-not-here": ("192.0.2.1", 0),
                      "host-unknown": ("no-such-host.invalid", 0)}[where]
        with pytest.raises(ConfigError, match="--port: expected a free port" if where == "port-in-use"
                           else "--host: expected an address of this machine"):
            bind(target, host=host, port=port)
    target.storage.remove_session()


def test_serve_answers_then_closes_its_port(search):
    target = load_target(search)
    server = bind(target, port=0)
    port = server.server_address[1]
    t = threading.Thread(target=serve, args=(server,), daemon=True)
    t.start()
    try:
        url = dashboard_url(target, server)
        assert url == f"http://127.0.0.1:{port}/dashboard/studies/1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/1?after=0", timeout=10) as r:
            detail = json.loads(r.read())
        assert detail["name"] == STUDY and len(detail["trials"]) == 3
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        server.shutdown()
        t.join(5)
        target.storage.remove_session()
    assert not t.is_alive()
    assert_port_closed(port)

