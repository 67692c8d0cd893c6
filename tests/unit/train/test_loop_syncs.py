"""The hot loop never waits for the device per step, and still stops on a non-finite step within one log
interval, naming the step and its size.

A host sync is any read of a tensor's value on the host: ``.item()``, ``float()``, ``int()``, ``bool()``
(an ``if`` on a tensor) all dispatch ``aten._local_scalar_dense``, counted by a ``TorchDispatchMode``;
``.tolist()``, ``.numpy()`` and ``.cpu()`` read memory without that op, so they are counted by patching
``torch.Tensor``. On a GPU each of these stalls the pipeline; on CPU they are free, which is why the count,
not a timing, is the test.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mixsize_ray.config import load_config
from mixsize_ray.train.loop import TrainingLoop

SETS = ["regime.sizes=[16,32]", "regime.probs=[0.5,0.5]", "regime.mode=D+", "regime.base_batch=16",
        "data.train_size=512", "data.test_size=64", "data.num_workers=0", "train.epochs=1",
        "optim.smoothing_alpha=0.9", "tracking.enabled=false"]


class SyncCounter(TorchDispatchMode):
    """Counts host reads of tensor values while active."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture
def counting(monkeypatch):
    """A SyncCounter that also counts ``tolist``/``numpy``/``cpu`` calls on tensors."""
    counter = SyncCounter()
    for name in ("tolist", "numpy", "cpu"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, **kw):
            counter.count += 1
            return _original(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counter


def loop_with_batches(tmp_path, monkeypatch, steps: int) -> tuple[TrainingLoop, list]:
    """A loop whose epoch runs ``steps`` steps over batches loaded beforehand (the loader's own reads of
    random numbers are not the training step's syncs)."""
    monkeypatch.setenv("MIXSIZE_RAY_DATA_DIR", str(tmp_path / "data"))
    loop = TrainingLoop(load_config(None, [*SETS, f"train.max_steps_per_epoch={steps}"]), log=lambda _m: None)
    loop.schedule.set_epoch(0, 0)
    batches = list(loop.loader)
    loop.loader = batches
    return loop, batches


def syncs_in_epoch(loop: TrainingLoop, counter: SyncCounter) -> tuple[int, dict]:
    before = counter.count
    with counter:
        metrics = loop.train_epoch()
    return counter.count - before, metrics


def test_no_host_sync_per_step(tmp_path, monkeypatch, counting):
    short, _ = loop_with_batches(tmp_path, monkeypatch, steps=3)
    long, _ = loop_with_batches(tmp_path, monkeypatch, steps=12)
    for loop in (short, long):
        loop.log_every = 10**6  # progress lines only at the first and last step
    n_short, m_short = syncs_in_epoch(short, counting)
    n_long, m_long = syncs_in_epoch(long, counting)
    assert (m_short["steps"], m_long["steps"]) == (3, 12)
    # 9 more steps, not one more sync: the reads happen at log lines and at the end of the epoch only
    assert n_long == n_short
    assert n_short <= 8  # 2 progress lines + the epoch's end (finite check, totals, norms, rank digest)


def test_syncs_grow_with_log_lines_not_steps(tmp_path, monkeypatch, counting):
    loop, _ = loop_with_batches(tmp_path, monkeypatch, steps=12)
    loop.log_every = 4  # lines at k = 0, 4, 8 and the last step 11
    n, _ = syncs_in_epoch(loop, counting)
    quiet, _ = loop_with_batches(tmp_path, monkeypatch, steps=12)
    quiet.log_every = 10**6  # lines at k = 0 and 11
    n_quiet, _ = syncs_in_epoch(quiet, counting)
    assert n - n_quiet == 2  # two more lines, one read each


def test_epoch_metrics_read_from_device_sums(tmp_path, monkeypatch):
    """The epoch's loss and top-1 equal those recomputed from the same forward passes' logits."""
    from mixsize_ray.core.loss import batch_augmentation_loss

    loop, batches = loop_with_batches(tmp_path, monkeypatch, steps=4)
    outputs: list[torch.Tensor] = []
    handle = loop.model.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach().clone()))
    m = loop.train_epoch()
    handle.remove()
    o = loop.cfg.optim
    loss_sum = correct = views = 0.0
    for logits, b in zip(outputs, batches, strict=True):
        n = logits.shape[0]
        loss = batch_augmentation_loss(logits.float(), b.targets, b.duplicates, per_image_weight=o.per_image_loss,
                                       label_smoothing=o.label_smoothing)
        loss_sum += float(loss) * n
        correct += float((logits.argmax(1) == b.targets).sum())
        views += n
    assert m["loss"] == pytest.approx(loss_sum / views, rel=1e-6)
    assert m["train_top1"] == correct / views


def test_non_finite_loss_stops_within_one_log_interval(tmp_path, monkeypatch):
    loop, batches = loop_with_batches(tmp_path, monkeypatch, steps=12)
    loop.log_every = 5  # reads at k = 0, 5, 10, 11
    bad = 2
    batches[bad].images.fill_(float("nan"))
    done: list[int] = []
    with pytest.raises(FloatingPointError) as err:
        loop.train_epoch(on_step=done.append)
    msg = str(err.value)
    assert msg == f"non-finite loss nan at epoch 0 step {bad} (size {batches[bad].size})"
    assert max(done) == 6  # stopped at the read after step k = 5, within one interval of the bad step
    assert max(done) - bad <= loop.log_every


def test_non_finite_gradient_norm_is_named(tmp_path, monkeypatch):
    """A finite loss whose gradient overflows: the smoother's norm is checked at the same read."""
    loop, batches = loop_with_batches(tmp_path, monkeypatch, steps=8)
    loop.log_every = 4
    first = next(p for p in loop.model.parameters() if p.requires_grad)
    calls = {"n": 0}

    def blow_up(grad):
        calls["n"] += 1
        return grad * float("inf") if calls["n"] == 2 else grad  # the second step's backward

    first.register_hook(blow_up)
    with pytest.raises(FloatingPointError) as err:
        loop.train_epoch()
    msg = str(err.value)
    assert msg.startswith("non-finite gradient norm inf at epoch 0 step 1 (size ")
    assert f"(size {batches[1].size}), loss " in msg


def test_check_finite_before_a_mid_epoch_save(tmp_path, monkeypatch):
    """What the worker calls before a mid-epoch checkpoint: it raises as soon as a bad step happened."""
    loop, batches = loop_with_batches(tmp_path, monkeypatch, steps=6)
    loop.log_every = 10**6
    batches[1].images.fill_(float("inf"))
    raised_at: list[int] = []

    def save(k: int) -> None:
        try:
            loop.check_finite()
        except FloatingPointError:
            raised_at.append(k)
            raise

    with pytest.raises(FloatingPointError, match=r"step 1 \(size"):
        loop.train_epoch(on_step=save)
    assert raised_at == [2]  # the first save after the bad step (k counts steps done)
