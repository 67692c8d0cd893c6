"""No test asserts a wall-clock time. This kind of machine runs the same suite in 23 minutes one day and 48
the next, so a test that checks seconds is a coin toss and a red CI lands nothing. Speed lives in
`make bench` (medians of repeats, ratios measured in one run). A deadline that only stops a hang is fine:
``assert time.monotonic() < deadline``, ``proc.wait(timeout=60)``.

The check reads every test module's syntax tree (not its text) and flags an ``assert`` whose comparison has
a side that is an elapsed time: a difference of clock readings (``time.monotonic() - t0``), a clock reading
against anything but a deadline, or a name, attribute or key of the timing vocabulary (``took``,
``elapsed``, ``seconds``, ``wall_s``, ``r["s"]``...)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
CLOCKS = {"monotonic", "perf_counter", "time", "monotonic_ns", "perf_counter_ns", "time_ns", "process_time"}
TIMING_WORDS = {"took", "elapsed", "seconds", "secs", "duration", "wall", "wall_s", "wall_time", "s", "dt",
                "runtime", "latency_s", "elapsed_s", "took_s"}


def _is_clock(node: ast.AST) -> bool:
    """``time.monotonic()``, ``perf_counter()``... a reading of a clock."""
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    return name in CLOCKS and (not isinstance(f, ast.Attribute) or getattr(f.value, "id", "") == "time")


def _word(node: ast.AST) -> str:
    """The identifier a value is known by: a name, an attribute, or a constant string key."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value
    return ""


def _is_deadline(node: ast.AST) -> bool:
    return "deadline" in _word(node).lower()


def _elapsed(node: ast.AST) -> bool:
    """Whether ``node`` is an elapsed time: a clock difference or a value named like one."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
        return any(_is_clock(n) for n in ast.walk(node))
    return _word(node).lower() in TIMING_WORDS


def wall_clock_asserts(source: str) -> list[int]:
    """Line numbers of the asserts in ``source`` that check a wall-clock time.

    Example:
        >>> wall_clock_asserts("assert took < 10\\nassert time.monotonic() < deadline\\nassert n < 10\\n")
        [1]
    """
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Assert):
            continue
        for cmp in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
            if not any(isinstance(op, ast.Lt | ast.LtE | ast.Gt | ast.GtE) for op in cmp.ops):
                continue
            sides = [cmp.left, *cmp.comparators]
            if any(isinstance(s, ast.Constant) and s.value == 0 for s in sides):
                continue  # a sign (``seconds > 0``: a time was measured at all), not a bound
            clock_vs_other = any(_is_clock(s) for s in sides) and not any(_is_deadline(s) for s in sides)
            if clock_vs_other or any(_elapsed(s) for s in sides):
                lines.append(node.lineno)
                break
    return lines


def test_the_check_finds_each_kind_of_timing_assert():
    caught = [
        "assert r['s'] < 10, f'took {r}'",
        "assert proc.returncode == 0 and took < 10",
        "assert time.monotonic() - t0 < 10",
        "assert time.perf_counter() - start <= 5.0",
        "assert result.elapsed < 3",
        "assert 2 > seconds",
        "assert time.monotonic() < t0 + 10",
    ]
    allowed = [
        "assert time.monotonic() < deadline, 'hung'",
        "assert proc.poll() is None and time.monotonic() < self.deadline",
        "assert len(lines) < 10",
        "assert r['rc'] == 2",
        "assert summary.seconds_total == 3",  # an equality, not a bound
        "assert seconds > 0 and tags == {}",  # a sign: something was timed
    ]
    assert [wall_clock_asserts(s) for s in caught] == [[1]] * len(caught)
    assert [wall_clock_asserts(s) for s in allowed] == [[]] * len(allowed)


def test_no_test_asserts_a_wall_clock_time():
    found = [f"{p.relative_to(TESTS.parent)}:{line}" for p in sorted(TESTS.rglob("*.py"))
             for line in wall_clock_asserts(p.read_text())]
    assert found == [], "wall-clock asserts (move the timing to make bench): " + ", ".join(found)
