"""The peak dense bf16 tensor-core FLOP/s of a CUDA card, by the name torch gives it: the MFU denominator of
``make gpu-check`` (``--peak-tflops`` overrides it).

Example:
    >>> lookup_peak("NVIDIA H100 80GB HBM3")[0], lookup_peak("NVIDIA H200 NVL")[0], lookup_peak("NVIDIA GH200 480GB")[0]
    (989.0, 835.5, 989.0)
    >>> lookup_peak("NVIDIA L40S")
    (None, "unknown card 'NVIDIA L40S': pass --peak-tflops")
"""

from __future__ import annotations

import re

# Dense (no 2:4 sparsity) bf16 TFLOP/s, first match wins. NVIDIA datasheets give bf16 WITH sparsity for
# Hopper; dense is half: H100 SXM and H200 SXM 1,979 -> 989; H100 PCIe 1,513 -> 756; H200 NVL 1,671 -> 835.5
# (H200 datasheet, NVL column); GH200 1,979 -> 989 (GH200 Grace Hopper Superchip datasheet: its GPU is an H100
# SXM-class Hopper). A100 312, L4 121 (242 sparse), A10 125 are dense as printed. torch names an H100 SXM
# "NVIDIA H100 80GB HBM3", a GH200 "NVIDIA GH200 480GB" (or "... 144G HBM3e"). H100 NVL is not listed (its
# datasheets disagree): MFU null unless --peak-tflops is passed.
PEAK_BF16_TFLOPS: list[tuple[str, float]] = [
    (r"H100.*PCIe", 756.0),
    (r"H100.*(SXM|HBM3)", 989.0),
    (r"\bH200\b.*\bNVL\b", 835.5),
    (r"\bH200\b", 989.0),
    (r"\bGH200\b", 989.0),
    (r"\bA100\b", 312.0),
    (r"\bL4\b", 121.0),
    (r"\bA10\b", 125.0),
]


def lookup_peak(name: str) -> tuple[float | None, str]:
    """:data:`PEAK_BF16_TFLOPS` for a CUDA device name: ``(TFLOP/s, source)``, or ``(None, why)``."""
    for pattern, tflops in PEAK_BF16_TFLOPS:
        if re.search(pattern, name):
            return tflops, f"NVIDIA datasheet ({name} ~ /{pattern}/)"
    return None, f"unknown card {name!r}: pass --peak-tflops"
