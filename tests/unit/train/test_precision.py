"""train.amp / train.channels_last: ``auto`` (the default) is bf16 + channels_last on a CUDA device with bf16
support, fp32 NCHW on a CPU; explicit settings apply on CUDA only; the config takes true, false or auto."""

from __future__ import annotations

import pytest
import torch

from mixsize_ray.config import TrainConfig, load_config
from mixsize_ray.errors import ConfigError
from mixsize_ray.train.precision import Precision, resolve

CUDA, CPU = torch.device("cuda", 0), torch.device("cpu")


def test_defaults_are_auto():
    assert (TrainConfig().amp, TrainConfig().channels_last) == ("auto", "auto")


@pytest.mark.parametrize(("amp", "cl", "bf16_ok", "want"), [
    ("auto", "auto", True, Precision("bf16", True)),
    ("auto", "auto", False, Precision("none", True)),  # pre-Ampere: no bf16
    ("fp16", False, True, Precision("fp16", False)),
    ("none", True, True, Precision("none", True)),
])
def test_on_cuda(monkeypatch, amp, cl, bf16_ok, want):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_ok)
    got = resolve(amp, cl, CUDA)
    assert got == want and got.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}.get(want.amp)


@pytest.mark.parametrize(("amp", "cl"), [("auto", "auto"), ("bf16", True), ("fp16", True)])
def test_a_cpu_trains_as_before(amp, cl):
    p = resolve(amp, cl, CPU)
    assert p == Precision("none", False) and p.dtype is None


def test_the_loop_on_cpu_resolves_auto_to_fp32_nchw(tmp_path, monkeypatch):
    from mixsize_ray.train.loop import TrainingLoop

    monkeypatch.setenv("MIXSIZE_RAY_DATA_DIR", str(tmp_path))
    loop = TrainingLoop(load_config(None, ["data.train_size=128", "data.test_size=32", "data.num_workers=0"]))
    assert loop.precision == Precision("none", False) and loop.amp_dtype is None and loop.scaler is None


@pytest.mark.parametrize(("value", "ok"), [("true", True), ("false", False), ("auto", "auto")])
def test_channels_last_takes_true_false_or_auto(value, ok):
    assert load_config(None, [f"train.channels_last={value}"]).train.channels_last == ok


def test_channels_last_refuses_anything_else():
    with pytest.raises(ConfigError, match="train.channels_last.*true, false or auto"):
        load_config(None, ["train.channels_last=sometimes"])
