"""Latency of a model's forward per image size on this machine: the median of timed repeats after warm-up.

Each timed call is one eval-mode forward of a ``[batch, 3, S, S]`` float32 tensor under
``torch.inference_mode`` (CUDA: synchronised before and after, so the time is the kernels', not the launch's).
The model's BN statistics do not change the time, so one model serves every size.

Example:
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    >>> table = measure_latency(net, [8, 16], LatencyPlan(batches=(1, 4), repeats=3, warmup=1))
    >>> sorted(table), sorted(table[16]), all(ms > 0 for row in table.values() for ms in row.values())
    ([8, 16], [1, 4], True)
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mixsize_ray.errors import ConfigError

LATENCY_BATCHES = (1, 32)
"""The batches timed by default: one request at a time, and a full serving batch."""


def _count(field_name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(field_name, f"an integer >= {low}", value)


@dataclass(frozen=True)
class LatencyPlan:
    """How latency is measured.

    Attributes:
        batches: batch sizes timed at every size (default ``(1, 32)``).
        repeats: timed forwards per (size, batch); their median is reported (default 5).
        warmup: untimed forwards before them (default 2).
        device: where the model runs (``"cpu"`` default, ``"cuda"``, ``"cuda:1"``).
        threads: torch's CPU threads while timing (default None: torch's own setting, usually the cores);
            on a shared machine 1 gives steadier numbers.
        channels: image channels (default 3).

    Raises:
        ConfigError: ``repeats`` < 1, ``warmup`` < 0, a batch < 1, ``threads`` < 1, or a device torch does
            not have.
    """

    batches: tuple[int, ...] = LATENCY_BATCHES
    repeats: int = 5
    warmup: int = 2
    device: str = "cpu"
    threads: int | None = None
    channels: int = 3

    def __post_init__(self) -> None:
        _count("--repeats", self.repeats, 1)
        if self.threads is not None:
            _count("--threads", self.threads, 1)
        _count("--warmup", self.warmup, 0)
        if not self.batches:
            raise ConfigError("latency batches", "at least one batch size", self.batches)
        for b in self.batches:
            _count("latency batches", b, 1)
        try:
            dev = torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ConfigError("--device", "a torch device such as cpu or cuda:0", self.device) from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device", "a device this machine has (no CUDA here)", self.device)


def device_name(device: str | torch.device, threads: int | None = None) -> str:
    """The device in words: the GPU's name, or the CPU with the intra-op thread count (``threads``, default
    torch's current setting).

    Example:
        >>> device_name("cpu").startswith("cpu (")
        True
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    import platform

    cpu = platform.processor() or platform.machine()
    try:  # Linux names the model in /proc/cpuinfo; platform.processor() is often just the architecture
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    n = threads or torch.get_num_threads()
    return f"cpu ({cpu}, {n} thread{'s' if n != 1 else ''})"


def median_ms(call: Callable[[], object], repeats: int, warmup: int, sync: Callable[[], None]) -> float:
    """Median wall time of ``call()`` in milliseconds over ``repeats`` timed calls after ``warmup`` untimed.

    Example:
        >>> median_ms(lambda: sum(range(1000)), repeats=3, warmup=1, sync=lambda: None) > 0
        True
    """
    for _ in range(warmup):
        call()
    sync()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        call()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(statistics.median(times))


def measure_latency(model: nn.Module, sizes: Sequence[int], plan: LatencyPlan) -> dict[int, dict[int, float]]:
    """Median ms of one forward of ``[batch, C, S, S]`` for every size S in ``sizes`` and batch of ``plan``.

    ``model`` is not changed (an eval-mode copy runs on ``plan.device``); torch's thread count is restored.

    Returns:
        ``{size: {batch: median ms}}``.
    """
    dev = torch.device(plan.device)
    net = copy.deepcopy(model).to(dev).eval()
    dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()), torch.float32)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(0)
    out: dict[int, dict[int, float]] = {}
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(plan.threads or threads)
        with torch.inference_mode():
            for size in sizes:
                out[int(size)] = {}
                for batch in plan.batches:
                    x = torch.rand(batch, plan.channels, size, size, generator=gen).to(dev, dtype)
                    out[int(size)][int(batch)] = median_ms(lambda x=x: net(x), plan.repeats, plan.warmup, sync)
    finally:
        torch.set_num_threads(threads)
    return out
