"""Driver side of a training run: preflight checks, Ray connection, TorchTrainer construction, fit.

Everything that can be checked before a worker starts is checked here and raised as a one-line
:class:`ConfigError` (the CLI exits 2): worker count, batch divisibility by the world size (the regime
solver with world_size = num_workers), a writable storage path, a reachable RAY_ADDRESS, GPUs present when
``ray.use_gpu`` is set (unless ``ray.autoscaling``), and an existing run of the same name whose config
differs (a re-run of the same name resumes; it never silently starts over or mixes two configs).
"""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mixsize_ray.config import Config, config_from_dict
from mixsize_ray.core.regime import regime_from_config
from mixsize_ray.errors import ConfigError

# Config sections (and keys) that must match for a re-run of the same name to resume it.
_RESUME_KEYS = ("data", "model", "regime", "optim")
_RESUME_IGNORED = {"data.num_workers"}

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


def storage_path(cfg: Config) -> str:
    """Where Ray Train keeps the run: ray.storage_path, else train.output_dir (made absolute)."""
    p = cfg.ray.storage_path or cfg.train.output_dir
    if "://" in p:
        return p
    return str(Path(p).expanduser().resolve())


def check_storage(path: str) -> None:
    if "://" in path:
        import pyarrow.fs

        try:
            pyarrow.fs.FileSystem.from_uri(path)
        except Exception as e:  # noqa: BLE001
            raise ConfigError("ray.storage_path", "a local folder or a pyarrow filesystem URI", path,
                              hint=str(e).splitlines()[0][:120]) from None
        return
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ConfigError("ray.storage_path", "a writable folder", path, hint=e.strerror) from None


def check_address(address: str, timeout: float = 5.0) -> None:
    """TCP-connect to a Ray address (``host:port``, ``ray://host:port``, ``http://host:port``)."""
    if address in ("auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    host, port = parsed.hostname, parsed.port
    if not host or not port:
        raise ConfigError("ray.address", "host:port, ray://host:port or http://host:port", address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        raise ConfigError("ray.address", "a reachable Ray cluster", address,
                          hint=e.strerror or type(e).__name__) from None


def _diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    for sec in _RESUME_KEYS:
        for k in sorted(set(a.get(sec, {})) | set(b.get(sec, {}))):
            if f"{sec}.{k}" in _RESUME_IGNORED:
                continue
            if a.get(sec, {}).get(k) != b.get(sec, {}).get(k):
                out.append(f"{sec}.{k}: {a.get(sec, {}).get(k)!r} -> {b.get(sec, {}).get(k)!r}")
    return out


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder (one with state.pt) under a local run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    cands = [p.parent for p in run_dir.glob("checkpoint_*/state.pt")]
    return max(cands, key=lambda p: p.stat().st_mtime) if cands else None


def check_resume_compatible(cfg: Config, storage: str) -> Path | None:
    """If the run already has checkpoints, their config must match on data/model/regime/optim."""
    if "://" in storage:
        return None
    ckpt = latest_checkpoint(Path(storage) / cfg.train.name)
    if ckpt is None:
        return None
    import yaml

    old = yaml.safe_load((ckpt / "config.yaml").read_text()) if (ckpt / "config.yaml").is_file() else {}
    diff = _diff(old or {}, cfg.to_dict())
    if diff:
        raise ConfigError("train.name", "a new run name, or the config the existing run used",
                          cfg.train.name, hint=f"{ckpt.parent} differs: {'; '.join(diff[:3])}")
    return ckpt


def preflight(cfg: Config) -> dict[str, Any]:
    """All checks that need no worker; returns facts for the run summary."""
    if cfg.ray.num_workers < 1:
        raise ConfigError("ray.num_workers", ">= 1", cfg.ray.num_workers)
    from mixsize_ray.data.datasets import count_train_images

    d = cfg.data
    table = regime_from_config(cfg, world_size=cfg.ray.num_workers,
                               num_images=count_train_images(d.name, d.root, d.train_size)).solve()
    storage = storage_path(cfg)
    check_storage(storage)
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        check_address(address)
    from mixsize_ray.data.datasets import build_dataset

    if cfg.data.name != "shapes":  # a missing or malformed data folder fails here, not in a worker
        build_dataset(cfg.data.name, cfg.data.root, "train", seed=cfg.data.seed)
    resume_from = check_resume_compatible(cfg, storage)
    tracking_uri = None
    if cfg.tracking.enabled:  # an MLflow store that does not answer stops the run here, naming the URI
        from mixsize_ray.tracking.uri import check_reachable, resolve_tracking_uri

        tracking_uri = resolve_tracking_uri(cfg.tracking.uri)
        check_reachable(tracking_uri, cfg.tracking.timeout_s)
    return {"table": table, "storage": storage, "address": address, "resume_from": resume_from,
            "tracking_uri": tracking_uri}


def connect(cfg: Config, address: str | None) -> None:
    """Connect to the cluster at ``address`` or start a local one with a temp dir of its own."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        need = cfg.ray.num_workers * cfg.ray.cpus_per_worker
        ray.init(
            num_cpus=max(os.cpu_count() or 1, int(need + 0.999)),
            num_gpus=None,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",  # a private local cluster: loopback only
            _temp_dir=tempfile.mkdtemp(prefix="mixsize-ray-"),
            log_to_driver=True,
        )
    if cfg.ray.use_gpu and not cfg.ray.autoscaling:
        gpus = ray.cluster_resources().get("GPU", 0)
        if gpus < cfg.ray.num_workers:
            raise ConfigError("ray.use_gpu", f"a cluster with >= {cfg.ray.num_workers} GPUs "
                              "(or ray.autoscaling: true)", True, hint=f"the cluster has {gpus:g} GPUs")


def build_trainer(cfg: Config, storage: str, tracking: dict[str, Any] | None = None):
    """The TorchTrainer for ``cfg`` (gloo on CPU, nccl on GPU). ``tracking`` (a
    :class:`~mixsize_ray.tracking.TrackingRun` as a dict) makes rank 0 log to that MLflow run."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from mixsize_ray.train.worker import train_func

    resources = {"CPU": cfg.ray.cpus_per_worker}
    if cfg.ray.use_gpu:
        resources["GPU"] = 1
    return TorchTrainer(
        train_func,
        train_loop_config={"config": cfg.to_dict(), **({"tracking": tracking} if tracking else {})},
        torch_config=TorchConfig(backend="nccl" if cfg.ray.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.ray.num_workers, use_gpu=cfg.ray.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(
            name=cfg.train.name,
            storage_path=storage,
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.num_to_keep),
        ),
    )


@dataclass
class RunSummary:
    run_dir: str
    checkpoint: str | None
    metrics: dict[str, Any]
    mlflow_run_id: str | None = None

    @property
    def sweep_json(self) -> str | None:
        return None if self.checkpoint is None else os.path.join(self.checkpoint, "sweep.json")


def run_training(cfg: Config) -> RunSummary:
    """Preflight, connect, fit; return where the results are."""
    facts = preflight(cfg)
    print(facts["table"].format(), flush=True)
    if facts["resume_from"] is not None:
        print(f"[mixsize-ray] run '{cfg.train.name}' exists: resuming from {facts['resume_from']}", flush=True)
    import ray

    started_here = not ray.is_initialized()
    tracking = None
    try:
        connect(cfg, facts["address"])
        if cfg.tracking.enabled:  # after the cluster checks: a refused run leaves no MLflow run behind
            from mixsize_ray.tracking import start_run

            tracking = start_run(cfg, storage=facts["storage"], resume_from=facts["resume_from"], log=_say)
        trainer = build_trainer(cfg, facts["storage"], tracking=tracking.to_dict() if tracking else None)
        result = trainer.fit()
    except BaseException as e:
        if tracking is not None:
            from mixsize_ray.tracking import finish_run

            finish_run(tracking, "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED", log=_say)
        raise
    finally:
        if started_here and ray.is_initialized():
            ray.shutdown()
    metrics = dict(result.metrics or {})
    run_id = None
    if tracking is not None:
        from mixsize_ray.tracking import finish_run

        run_id = metrics.get("mlflow_run_id") or tracking.run_id
        finish_run(tracking, "FINISHED", run_id=run_id, log=_say)
    ckpt = result.checkpoint.path if result.checkpoint is not None else None
    return RunSummary(run_dir=os.path.join(facts["storage"], cfg.train.name), checkpoint=ckpt,
                      metrics=metrics, mlflow_run_id=run_id)


def _say(msg: str) -> None:
    print(f"[mixsize-ray] {msg}", flush=True)
