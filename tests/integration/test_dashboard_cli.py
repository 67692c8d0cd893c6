"""`mixsize-ray dashboard optuna SEARCH_DIR` serves a real search's Optuna study (optuna-dashboard) on
loopback as a real process: one printed line with the URL and the study, the JSON API and the page rendered
in headless Chromium show the study, and SIGTERM / Ctrl-C stops it with no process left and the port closed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from mixsize_ray.tracking.server import descendants
from tests.browser import ARTIFACTS, chromium
from tests.integration.conftest import free_port
from tests.optuna_search import STUDY, assert_port_closed, make_search

pytestmark = pytest.mark.integration


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start(search_dir, port: int, cwd, sigint_ignored: bool = False) -> tuple[subprocess.Popen, str]:
    """The command as a real process (own session, like a terminal's), and the line it prints once serving;
    ``sigint_ignored``: started as a background job of a script is (SIGINT ignored, and inherited)."""
    proc = subprocess.Popen([sys.executable, "-m", "mixsize_ray.cli", "dashboard", "optuna", str(search_dir),
                             "--port", str(port)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=_ignore_sigint if sigint_ignored else None)
    deadline, line = time.monotonic() + 60, ""
    while "Optuna dashboard:" not in line:
        assert time.monotonic() < deadline and proc.poll() is None, line + (proc.stdout.read() or "")
        line = proc.stdout.readline()
    return proc, line


def _stop(proc: subprocess.Popen, sig: int) -> bool:
    """Send ``sig``; whether the command exited by itself. One still running after 60 s (a hang guard, not a
    speed check) is SIGKILLed with its group, and the test fails."""
    os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=60)
        return True
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return False


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_dashboard_serves_the_study_and_sigterm_stops_it(tmp_path):
    search = tmp_path / "dash-20250101-000000"
    make_search(search, trials=4)
    port = free_port()
    proc, line = _start(search, port, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}/dashboard/studies/1"
    try:
        assert line.split()[:3] == ["Optuna", "dashboard:", url] and f"study {STUDY}," in line
        studies = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
        assert [(s["study_id"], s["study_name"]) for s in studies] == [(1, STUDY)]
        detail = _get(f"http://127.0.0.1:{port}/api/studies/1?after=0")
        assert detail["name"] == STUDY and [t["state"] for t in detail["trials"]] == ["Complete"] * 4
        assert descendants(proc.pid) == []  # served in the command's own process: nothing to leave behind
        _browse(url, tmp_path)
    finally:
        exited = _stop(proc, signal.SIGTERM)  # a service manager's stop
    assert exited and proc.returncode == 0, proc.stdout.read()
    assert_port_closed(port)


def _browse(url: str, tmp_path) -> None:
    """The study page, rendered by headless Chromium, names the study (client-side: the DOM, not the HTML)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium(tmp_path)
    try:
        driver.get(url)
        WebDriverWait(driver, 30).until(lambda d: STUDY in d.find_element(By.TAG_NAME, "body").text)
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "optuna_dashboard.png"))
        assert (ARTIFACTS / "optuna_dashboard.png").stat().st_size > 10_000  # not a blank page
        requests = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert requests and all(r.startswith(f"{url.split('/dashboard')[0]}/") for r in requests)  # all local
    finally:
        driver.quit()


@pytest.mark.parametrize("sigint_ignored", [False, True])
def test_ctrl_c_stops_it_too(tmp_path, sigint_ignored):
    """Also when the parent ignored SIGINT (`cmd &` in a script, CI runners): the CLI takes Ctrl-C back."""
    make_search(tmp_path / "s", trials=1)
    port = free_port()
    proc, _ = _start(tmp_path / "s", port, cwd=tmp_path, sigint_ignored=sigint_ignored)
    exited = _stop(proc, signal.SIGINT)
    assert exited and proc.returncode == 0
    assert_port_closed(port)
