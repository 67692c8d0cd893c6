"""`make bench`: every benchmark in one run; results as ratios in benchmarks/results/*.json."""

from __future__ import annotations

import sys

from benchmarks import bench_calibration, bench_smoothing, bench_throughput

BENCHES = {"smoothing": bench_smoothing.main, "calibration": bench_calibration.main,
           "throughput": bench_throughput.main}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"bench: expected names from {list(BENCHES)}, got {unknown}", file=sys.stderr)
        return 2
    for name in names:
        BENCHES[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
