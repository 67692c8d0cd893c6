"""Latency per size: batch 1 and 32 for every size, a median (not a mean) of the timed repeats after the
warm-up, bigger work measured slower, and the plan's bad values refused."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from mixsize_ray.errors import ConfigError
from mixsize_ray.serve.latency import LatencyPlan, device_name, measure_latency, median_ms


def test_median_ignores_one_slow_repeat_and_skips_the_warmup():
    delays = iter([0.2, 0.2, 0.005, 0.1, 0.005])  # two warm-up calls (slow), then 5 ms, 100 ms, 5 ms
    ms = median_ms(lambda: time.sleep(next(delays)), repeats=3, warmup=2, sync=lambda: None)
    assert 4.5 < ms < 40  # a mean would be ~37 ms, a run that timed the warm-up ~200 ms


def test_every_size_has_batch_1_and_32_with_positive_medians_and_more_work_takes_longer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    table = measure_latency(net, [8, 64], LatencyPlan(repeats=3, warmup=1))
    assert sorted(table) == [8, 64] and all(sorted(row) == [1, 32] for row in table.values())
    assert all(ms > 0 for row in table.values() for ms in row.values())
    assert table[64][32] > table[8][32]  # 64x the pixels
    assert table[64][32] > table[64][1]  # 32x the images
    assert net[0].weight.device.type == "cpu" and net.training  # the model given is not changed


@pytest.mark.parametrize("kwargs, field", [({"repeats": 0}, "--repeats"), ({"warmup": -1}, "--warmup"),
                                           ({"batches": (1, 0)}, "latency batches"), ({"device": "tpu9"}, "--device"),
                                           ({"threads": 0}, "--threads")])
def test_bad_plans_are_refused(kwargs, field):
    with pytest.raises(ConfigError, match=f"^{field}"):
        LatencyPlan(**kwargs)


def test_device_is_named_with_its_threads_and_the_thread_setting_is_restored():
    n = torch.get_num_threads()
    assert device_name("cpu", threads=3).endswith(", 3 threads)") and device_name("cpu", 1).endswith(", 1 thread)")
    measure_latency(nn.Conv2d(3, 4, 3), [8], LatencyPlan(batches=(1,), repeats=1, warmup=0, threads=1))
    assert torch.get_num_threads() == n
