"""Every case of ``tests/cli_corpus/bad_inputs.yaml`` through the real CLI: exit 2, one line on stderr
naming the expected fragment, no traceback, nothing created in the working folder, no process left. The cases
run two at a time (module fixture); each case is its own test. No wall-clock time is asserted: a case still
running after 90 s counts as a hang (accepted by mistake). How fast refusals answer is measured in `make bench`
(benchmarks/bench_refusals.py)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.cli_corpus.runner import CASES, make_checkpoint, run_case


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A valid (untrained) checkpoint folder of the corpus' good.yaml."""
    return make_checkpoint(tmp_path_factory.mktemp("corpus-ckpt"))


@pytest.fixture(scope="module")
def results(checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {cid: pool.submit(run_case, case, (root / cid).resolve(), checkpoint)
                   for cid, case in CASES.items() if not (root / cid).mkdir()}
        return {cid: f.result() for cid, f in futures.items()}


def test_the_corpus_is_large_and_covers_every_subcommand():
    from mixsize_ray.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # every subcommand the CLI has
    covered = {c["args"][0] for c in CASES.values() if c["args"]}
    assert len(CASES) >= 60 and commands <= covered, sorted(commands - covered)


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_input_is_refused_in_one_line(results, case_id):
    r, want = results[case_id], CASES[case_id]["expect"]
    lines = r["stderr"].strip().splitlines()
    assert r["rc"] == 2, r["stderr"][-2000:]
    assert len(lines) == 1 and want in lines[0], lines
    assert "Traceback" not in r["stderr"] + r["stdout"]
    assert r["created"] == [], r["created"]
    assert r["left"] == []
