"""`mixsize-ray pick`: the size under each kind of limit on a real checkpoint, the table (every size, batch 1
and 32 latency, the pick marked), the .pt2 written (by default beside the checkpoint) and checked, and bad
input refused with exit 2 and one line, creating nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from mixsize_ray.cli import main

FAST = ["--repeats", "2", "--warmup", "1"]


@pytest.fixture(scope="module")
def sweep(serve_run):
    run, folder, cfg = serve_run
    return {r["size"]: r for r in json.loads((folder / "sweep.json").read_text())["sizes"]}


def _files(*folders):
    return sorted(str(p) for f in folders for p in f.rglob("*"))


def test_max_gflops_picks_the_best_affordable_size_and_exports_it(serve_run, sweep, tmp_path, capsys):
    run, folder, cfg = serve_run
    budget = (sweep[24]["gflops"] + sweep[32]["gflops"]) / 2  # 16 and 24 affordable
    want = max((16, 24), key=lambda s: (sweep[s]["top1_calibrated"], -s))
    out_json = tmp_path / "pick.json"
    rc = main(["pick", str(run), "--max-gflops", str(budget), "--out", str(tmp_path / "m-{size}.pt2"),
               "--json", str(out_json), *FAST])
    assert rc == 0
    doc = json.loads(out_json.read_text())
    assert doc["size"] == want and doc["qualifying"] == [16, 24]
    assert doc["top1"] == sweep[want]["top1_calibrated"] and doc["gflops"] == sweep[want]["gflops"]
    assert doc["exported"] == str(tmp_path / f"m-{want}.pt2") and (tmp_path / f"m-{want}.pt2").is_file()
    assert abs(100 * doc["exported_top1"] - 100 * doc["top1"]) <= 0.1
    for row in doc["sizes"]:
        assert sorted(row["latency_ms"]) == ["1", "32"] and all(ms > 0 for ms in row["latency_ms"].values())
    text = capsys.readouterr().out
    assert "ms@b1" in text and "ms@b32" in text and "cpu (" in text
    rows = [ln for ln in text.splitlines() if ln.strip()[:2] in ("16", "24", "32")]
    assert len(rows) == 3 and sum("<- pick" in ln for ln in rows) == 1
    assert f"picked size {want}:" in text and f"{want}" in next(ln for ln in rows if "<- pick" in ln)


def test_within_picks_the_cheapest_size_and_the_default_out_is_beside_the_checkpoint(serve_run, sweep, tmp_path):
    run, folder, cfg = serve_run
    ckpt = shutil.copytree(folder, tmp_path / "checkpoint_copy")
    best = max(r["top1_calibrated"] for r in sweep.values())
    rc = main(["pick", str(ckpt), "--within", "100", "--json", str(tmp_path / "p.json"), "--no-verify", *FAST])
    assert rc == 0
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["size"] == 16 and doc["best_top1"] == best and doc["exported_top1"] is None  # 100 points: all
    assert (ckpt / "serve-16.pt2").is_file()


def test_latency_limit_and_no_export(serve_run, tmp_path, capsys):
    run, folder, cfg = serve_run
    rc = main(["pick", str(folder / "state.pt"), "--max-latency-ms", "100000", "--no-export",
               "--json", str(tmp_path / "p.json"), *FAST])
    assert rc == 0
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["qualifying"] == [16, 24, 32] and doc["exported"] is None
    assert not list(folder.glob("*.pt2")) and ".pt2" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, needle",
    [
        (["{missing}"], "RUN_OR_CHECKPOINT"),
        (["{run}", "--max-gflops", "-1"], "--max-gflops: expected a number > 0"),
        (["{run}", "--max-gflops", "0.000001"], "--max-gflops: expected at least the cheapest size's"),
        (["{run}", "--max-latency-ms", "0.000001"], "--max-latency-ms: expected at least the fastest size's"),
        (["{run}", "--within", "101"], "--within"),
        (["{run}", "--out", "{tmp}/no/such/dir/m.pt2"], "--out"),
        (["{run}", "--out", "{tmp}"], "--out"),
        (["{run}", "--json", "{tmp}/no/such/p.json"], "--json"),
        (["{run}", "--sizes", "0,16"], "--sizes"),
        (["{run}", "--repeats", "0"], "--repeats"),
        (["{run}", "--register", "m"], "--tracking-uri"),
        (["{run}", "--no-export", "--out", "{tmp}/m.pt2"], "--out"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_creates_nothing(serve_run, tmp_path, capsys, monkeypatch, args,
                                                             needle):
    run, folder, cfg = serve_run
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = _files(run, tmp_path)
    argv = [a.format(run=run, tmp=tmp_path, missing=tmp_path / "missing") for a in args]
    rc = main(["pick", *FAST, *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0], err
    assert _files(run, tmp_path) == before


def test_the_command_line_exits_2_in_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mixsize_ray.cli", "pick", str(tmp_path / "nope"),
                           "--latency-batch", "32"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "RUN_OR_CHECKPOINT" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "mixsize_ray.cli", "pick", str(tmp_path), "--latency-batch", "7"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--latency-batch" in proc.stderr and proc.stderr.count("\n") == 1
