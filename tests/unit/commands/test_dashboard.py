"""`mixsize-ray dashboard optuna` refuses bad input through the real CLI: exit 2, one line on stderr, nothing
created, nothing left listening (the served dashboard itself: tests/integration/test_dashboard_cli.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mixsize_ray.cli import main
from tests.optuna_search import make_search


@pytest.fixture(scope="module")
def search(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("search")
    make_search(folder, trials=2)
    return folder


@pytest.fixture
def sigterm_restored():
    """main() installs its SIGTERM handler; put pytest's back afterwards."""
    old = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, old)


def _tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


CASES = {  # id: (arguments after `dashboard`, {search} = a real search folder; expected stderr fragment)
    "no-kind": ([], "the following arguments are required: {optuna}"),
    "unknown-kind": (["grafana"], "invalid choice: 'grafana'"),
    "no-search-dir": (["optuna"], "the following arguments are required: SEARCH_DIR"),
    "search-dir-missing": (["optuna", "nope"], "SEARCH_DIR: expected an existing search folder"),
    "not-a-search-folder": (["optuna", "."], "SEARCH_DIR: expected a search folder holding search.json"),
    "port-not-int": (["optuna", "{search}", "--port", "http"], "argument --port: invalid int value"),
    "port-zero": (["optuna", "{search}", "--port", "0"], "--port: expected an integer in 1..65535"),
    "port-too-big": (["optuna", "{search}", "--port", "70000"], "--port: expected an integer in 1..65535"),
    "host-not-here": (["optuna", "{search}", "--host", "192.0.2.1"], "--host: expected an address of this machine"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_2(case, search, tmp_path, monkeypatch, capsys, sigterm_restored):
    args, fragment = CASES[case]
    monkeypatch.chdir(tmp_path)
    before, before_search = _tree(tmp_path), _tree(search)
    rc = _main(["dashboard", *(a.replace("{search}", str(search)) for a in args)])
    err = capsys.readouterr().err
    assert rc == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(("mixsize-ray: error: ", "mixsize-ray dashboard")) and "Traceback" not in err
    assert _tree(tmp_path) == before and _tree(search) == before_search


def _main(argv: list[str]) -> int:
    """The exit code of ``mixsize-ray ARGV`` run in this process (argparse errors exit, ConfigError returns)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_busy_port_as_a_real_process(search, tmp_path):
    """The real process: exit 2, one line, nothing created and nothing started (no child, no listener)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "mixsize_ray.cli", "dashboard", "optuna", str(search),
                               "--port", str(port)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [f"mixsize-ray: error: --port: expected a free port on the host, got "
                                        f"'127.0.0.1:{port}' (Address already in use)"]
    assert proc.stdout == "" and list(tmp_path.iterdir()) == []
