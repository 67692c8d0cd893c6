"""Validation and the size sweep run on every rank, each over its shard of the test split, and give what one
rank reading the whole split gives: 2 gloo ranks, an odd number of images, loader workers."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mixsize_ray.config import load_config
from mixsize_ray.core.evaluation import SweepPlan, evaluate_top_k, size_sweep
from mixsize_ray.train.loop import TrainingLoop
from tests.unit.train.test_loop import SETS, _free_port

IMAGES = 37  # odd: the shards differ in size (19 and 18), and a padded sampler would count one image twice


def _rank(rank: int, port: int, data_dir: str, q) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), MIXSIZE_RAY_DATA_DIR=data_dir)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        cfg = load_config(None, [*SETS, f"data.test_size={IMAGES}", "data.num_workers=1",
                                 "train.eval_batch_size=8", "train.sweep_sizes=[16,24,32]"])
        loop = TrainingLoop(cfg, rank=rank, world_size=2)
        assert len(loop.eval_source().shard) == (19, 18)[rank]
        top1 = loop.validate(24)
        loop.calibrate()  # collective: the same averaged cache on both ranks
        sweep = loop.sweep(progress=False).to_dict()
        # the single-rank reference, today's way: the whole split in this process, size after size
        model = loop.model
        whole = evaluate_top_k(model, loop.data.eval_batches(24), ks=(1,))
        alone = size_sweep(model, SweepPlan([16, 24, 32]), loop.data.eval_batches, cache=loop.bn_cache,
                           progress=False).to_dict()
        q.put((rank, top1, whole["top1"], sweep, alone))
    except Exception as e:  # noqa: BLE001 - reported to the test
        q.put((rank, "error", repr(e), None, None))
    finally:
        dist.destroy_process_group()


def test_two_ranks_give_the_single_rank_result_exactly(tmp_path):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, port, str(tmp_path), q)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted((q.get(timeout=300) for _ in procs), key=lambda r: r[0])
    for p in procs:
        p.join(timeout=60)
    for rank, top1, whole, sweep, alone in results:
        assert top1 != "error", whole
        assert top1 == whole  # every rank returns the whole split's top-1
        assert sweep["eval_images_per_size"] == {"16": IMAGES, "24": IMAGES, "32": IMAGES}  # each image once
        for got, ref in zip(sweep["sizes"], alone["sizes"], strict=True):
            for key in ("size", "top1", "top5", "top1_calibrated", "top5_calibrated"):
                assert got[key] == ref[key], (rank, got["size"], key)
            assert got["gflops"] == pytest.approx(ref["gflops"])
