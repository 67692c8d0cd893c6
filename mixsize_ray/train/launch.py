"""The one path from a config to a finished run: ``launch(cfg)`` serves ``mixsize-ray train``, every Tune
trial, ``mixsize-ray demo``, the benchmarks, and (``job=Evaluation(...)``) ``mixsize-ray eval``.

1. :func:`~mixsize_ray.train.preflight.preflight` checks everything that needs no worker and solves the
   regime once (a one-line :class:`ConfigError` otherwise; nothing is created).
2. A run whose checkpoint already holds its last epoch is not trained again: its stored metrics come back.
3. :func:`~mixsize_ray.train.cluster.connect` joins or starts Ray (the one place that calls ``ray.init``).
4. The driver decides the MLflow run once (:func:`mixsize_ray.tracking.start_run`: the checkpoint's run
   when resuming, else a new one, nested under ``tracking.parent_run_id`` when set) and hands it to rank 0.
5. A TorchTrainer (gloo on CPU, nccl on GPU) runs :func:`mixsize_ray.train.worker.train_func` with the
   config, the solved table and the run; ``callbacks`` (Ray Train ``UserCallback``s, e.g. a Tune report
   callback) see every report. The driver sets the MLflow run's final status.

An :class:`~mixsize_ray.train.evaluate.Evaluation` job takes the same path without the training-only
steps (2 and 4): it runs in this process, or on one Ray Train worker when the run names a cluster
(``ray.address``/RAY_ADDRESS, as under ``ray job submit``), and its curve comes back as ``Result.sweep``.

Example:
    >>> from mixsize_ray.config import load_config
    >>> cfg = load_config("search_spaces/quickstart.yaml", ["tracking.enabled=false"])  # doctest: +SKIP
    >>> result = launch(cfg)  # doctest: +SKIP
    >>> result.metrics["val_top1"], result.sweep_json  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixsize_ray.config import Config, config_from_dict
from mixsize_ray.core.sweep_metrics import sweep_report
from mixsize_ray.errors import ConfigError, RunFailed, one_line
from mixsize_ray.train.cluster import ClusterRequest, connect, disconnect
from mixsize_ray.train.evaluate import Evaluation, eval_func, sweep_from_doc
from mixsize_ray.train.preflight import Preflight, Start, preflight

SMOKE_OVERRIDES = [
    "data.train_size=1536",
    "data.test_size=256",
    "data.num_workers=0",
    "train.epochs=2",
    "train.max_steps_per_epoch=12",
    "train.calibrate_batches=3",
    "train.eval_batch_size=128",
]


def apply_smoke(cfg: Config) -> Config:
    """Shrink data, steps and the sweep for a run of about a minute on a 2-core CPU."""
    raw = cfg.to_dict()
    overrides = list(SMOKE_OVERRIDES)
    if cfg.data.name != "shapes":
        overrides = [o for o in overrides if not o.startswith(("data.train_size", "data.test_size"))]
    s0 = cfg.regime.base_size
    sizes = sorted({max(8, s0 // 2), s0, s0 * 3 // 2, *cfg.regime.sizes})
    overrides.append(f"train.sweep_sizes={sizes}")
    return config_from_dict(raw, overrides)


@dataclass
class Result:
    """Where a finished run is: its folder, last checkpoint (with ``sweep.json``), last report, MLflow run."""

    run_dir: str
    checkpoint: str | None
    metrics: dict[str, Any]
    mlflow_run_id: str | None = None
    preflight: Preflight | None = field(default=None, repr=False)
    trained: bool = True  # False: the checkpoint already held the last epoch, nothing ran
    sweep: Any = None  # an Evaluation's SweepResult

    @property
    def sweep_json(self) -> str | None:
        return None if self.checkpoint is None else os.path.join(self.checkpoint, "sweep.json")


@dataclass(frozen=True)
class WorkerSpec:
    """What the TorchTrainer runs: ``func(loop_config)`` on ``num_workers`` workers, Ray Train's run
    ``name`` under ``storage``, and the ``callbacks`` that see every report."""

    func: Callable[[dict[str, Any]], None]
    loop_config: dict[str, Any]
    num_workers: int
    name: str
    storage: str
    callbacks: Sequence[Any] = ()


def training_spec(cfg: Config, facts: Preflight, tracking: dict[str, Any] | None = None,
                  callbacks: Sequence[Any] = ()) -> WorkerSpec:
    """The training workers get the config, the solved table and (``tracking``, a
    :class:`~mixsize_ray.tracking.TrackingRun` as a dict) the MLflow run rank 0 logs to; with a
    :class:`~mixsize_ray.train.preflight.Start` also where to start from and after which epoch to stop."""
    from mixsize_ray.train.worker import train_func

    loop_config: dict[str, Any] = {"config": cfg.to_dict(), "table": facts.table}
    if tracking:
        loop_config["tracking"] = tracking
    if facts.start is not None:
        loop_config["start"] = {"checkpoint": facts.start.checkpoint, "stop_after_epoch": facts.start.stop_after_epoch}
    return WorkerSpec(train_func, loop_config, cfg.ray.num_workers, cfg.train.name, facts.storage, callbacks)


def build_trainer(cfg: Config, spec: WorkerSpec):
    """The TorchTrainer for ``spec`` with ``cfg``'s resources (gloo on CPU, nccl and a GPU per worker with
    ``ray.use_gpu``; its rendezvous on 127.0.0.1 on a local cluster: :mod:`.rendezvous`), failure budget and
    checkpoint retention; without Ray Train's placement-group cleaner
    on a cluster that serves no State API (a local one), where it cannot work (:mod:`.orphan_groups`)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from mixsize_ray.train.orphan_groups import serves_state_api, without_train_cleaner
    from mixsize_ray.train.rendezvous import RendezvousConfig

    resources = {"CPU": cfg.ray.cpus_per_worker}
    if cfg.ray.use_gpu:
        resources["GPU"] = 1
    trainer_cls = TorchTrainer if serves_state_api() else without_train_cleaner(TorchTrainer)
    return trainer_cls(
        spec.func,
        train_loop_config=spec.loop_config,
        torch_config=RendezvousConfig(backend="nccl" if cfg.ray.use_gpu else "gloo"),  # loopback on a local cluster
        scaling_config=ScalingConfig(num_workers=spec.num_workers, use_gpu=cfg.ray.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(
            name=spec.name,
            storage_path=spec.storage,
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.num_to_keep),
            callbacks=list(spec.callbacks) or None,
        ),
    )


def fit(trainer: Any, reap_groups: bool) -> Any:
    """``trainer.fit()``; with ``reap_groups`` (the driver that connected) on a cluster without State API,
    a :class:`~mixsize_ray.train.orphan_groups.GroupReaper` frees orphan placement groups meanwhile, as Ray
    Train's cleaner would where it can run. (In a Tune trial the search's callback does it.)"""
    from mixsize_ray.train.orphan_groups import GroupReaper, serves_state_api

    if not reap_groups or serves_state_api():
        return trainer.fit()
    import ray

    with GroupReaper(ray.get_runtime_context().get_job_id(), say=_say):
        return trainer.fit()


def check_gpus(cfg: Config, workers: int) -> None:
    """``ray.use_gpu`` needs a GPU per worker in the cluster (unless it autoscales)."""
    import ray

    if cfg.ray.use_gpu and not cfg.ray.autoscaling:
        gpus = ray.cluster_resources().get("GPU", 0)
        if gpus < workers:
            raise ConfigError("ray.use_gpu", f"a cluster with >= {workers} GPUs "
                              "(or ray.autoscaling: true)", True, hint=f"the cluster has {gpus:g} GPUs")


def launch(cfg: Config, *, job: Evaluation | None = None, callbacks: Sequence[Any] = (),
           log: Callable[[str], None] | None = None, start: Start | None = None) -> Result:
    """Preflight, connect, decide the MLflow run, fit; return where the results are (see module doc).

    ``start`` (a scheduler's request, e.g. a PBT trial; never set by ``mixsize-ray train``): begin a new run
    from another run's checkpoint, whose config may differ in ``start.may_change`` only, and/or stop after
    an epoch. A training failure is re-raised after the MLflow run is marked FAILED (KILLED on Ctrl-C)."""
    say = log or _say
    if job is not None:
        return _evaluate(cfg, job, callbacks)
    facts = preflight(cfg, start=start)
    say(facts.table.format())
    if facts.resume is not None:
        say(f"run '{cfg.train.name}' exists: resuming from {facts.resume.path}")
    tracking = None
    if cfg.tracking.enabled:  # after the checks: a refused run leaves no MLflow run behind
        from mixsize_ray.tracking import start_run

        resume_id = facts.resume.mlflow_run_id if facts.resume else (start.mlflow_run_id if start else None)
        tracking = start_run(cfg, storage=facts.storage, resume_run_id=resume_id, log=say)
    if facts.completed(cfg.train.epochs if start is None or start.stop_after_epoch is None
                       else start.stop_after_epoch + 1):  # nothing to train: the stored last report
        say("run already complete: nothing to train")
        _finish(tracking, "FINISHED", say)
        return Result(run_dir=facts.run_dir, checkpoint=facts.resume.path, metrics=dict(facts.resume.metrics),
                      mlflow_run_id=tracking.run_id if tracking else None, preflight=facts,
                      trained=False)
    started_here = False
    try:
        started_here = connect(ClusterRequest(facts.address, cfg.ray.num_workers * cfg.ray.cpus_per_worker))
        check_gpus(cfg, cfg.ray.num_workers)
        spec = training_spec(cfg, facts, tracking.to_dict() if tracking else None, callbacks)
        result = fit(build_trainer(cfg, spec), reap_groups=started_here)
    except (KeyboardInterrupt, ConfigError) as e:
        _finish(tracking, "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED", say)
        raise
    except Exception as e:  # noqa: BLE001 - Ray's errors carry every worker's traceback: one line instead
        _finish(tracking, "FAILED", say)
        raise RunFailed(failure_reason(e), resume_hint(cfg, facts)) from e
    finally:
        if started_here:
            disconnect()
    _finish(tracking, "FINISHED", say)
    ckpt = result.checkpoint.path if result.checkpoint is not None else None
    return Result(run_dir=facts.run_dir, checkpoint=ckpt, metrics=dict(result.metrics or {}),
                  mlflow_run_id=tracking.run_id if tracking else None, preflight=facts)


def failure_reason(err: BaseException) -> str:
    """A one-line reason for a failed training run; divergence is named as such.

    Example:
        >>> failure_reason(RuntimeError("Worker 0 failed:\\nFloatingPointError: non-finite loss at step 3 (size 16)"))
        'diverged: non-finite loss at step 3 (size 16)'
        >>> failure_reason(RuntimeError("\\nWorkerGroupError: 1 worker died\\n  traceback ..."))
        'failed: RuntimeError: WorkerGroupError: 1 worker died'
    """
    lines = [line for line in str(err).splitlines() if "non-finite loss" in line or "non-finite gradient" in line]
    # the error's own line, not a traceback's source line that raised it (raise FloatingPointError(f"..."))
    lines = [line for line in lines if "FloatingPointError:" in line] or [x for x in lines if "raise " not in x]
    if lines:
        return "diverged: " + one_line(lines[0].split("FloatingPointError:")[-1], 300)
    return f"failed: {type(err).__name__}: {one_line(err, 300)}"


def resume_hint(cfg: Config, facts: Preflight) -> str:
    """What to do after a failure: re-run to resume (a checkpoint exists), or what to raise."""
    from mixsize_ray.train.checkpoint import latest_checkpoint_info

    retries = f"after {cfg.train.max_failures} automatic restart(s) (train.max_failures)"
    if latest_checkpoint_info(facts.storage, cfg.train.name) is not None:
        return f"{retries}; re-run the same command to resume from the last checkpoint in {facts.run_dir}"
    return f"{retries}; no checkpoint was written, a re-run starts over"


def _evaluate(cfg: Config, job: Evaluation, callbacks: Sequence[Any]) -> Result:
    """An :class:`Evaluation` through the same preflight and the same ``connect``: in this process, or on
    one worker of the cluster the run names (``ray.address``/RAY_ADDRESS; its device: a GPU with
    ``ray.use_gpu``). The worker hands the curve back in a checkpoint under the run's storage
    (``<train.name>-eval-<time>``), removed again from local storage once read."""
    import shutil
    import time

    facts = preflight(cfg, training=False)
    job.check(cfg)
    if not facts.address:
        sweep = job.run(cfg)
        return Result(run_dir=facts.run_dir, checkpoint=job.checkpoint, metrics=sweep_report(sweep.to_dict()),
                      preflight=facts, sweep=sweep)
    name = f"{cfg.train.name}-eval-{time.strftime('%Y%m%d-%H%M%S')}"
    started_here = connect(ClusterRequest(facts.address, cfg.ray.cpus_per_worker))
    try:
        check_gpus(cfg, 1)
        spec = WorkerSpec(eval_func, {"config": cfg.to_dict(), "job": job}, 1, name, facts.storage, callbacks)
        result = build_trainer(cfg, spec).fit()
    finally:
        if started_here:
            disconnect()
    with result.checkpoint.as_directory() as d:
        doc = json.loads((Path(d) / "sweep.json").read_text())
    if "://" not in facts.storage:
        shutil.rmtree(Path(facts.storage) / name, ignore_errors=True)
    sweep = sweep_from_doc(doc)
    return Result(run_dir=facts.run_dir, checkpoint=job.checkpoint, metrics=sweep_report(doc), preflight=facts,
                  sweep=sweep)


def _finish(tracking: Any, status: str, say: Callable[[str], None]) -> None:
    if tracking is not None:
        from mixsize_ray.tracking import finish_run

        finish_run(tracking, status, log=say)


def _say(msg: str) -> None:
    print(msg if "\n" in msg else f"[mixsize-ray] {msg}", flush=True)
