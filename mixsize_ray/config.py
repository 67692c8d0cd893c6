"""Typed run configuration: YAML sections, ``--set section.key=value`` overrides, validation at load.

A config file has the sections ``data``, ``model``, ``regime``, ``optim``, ``train``, ``ray`` and
``tracking``; every key is optional and defaults live in the dataclasses below (one place, with units).
Unknown sections or keys, wrong types and values outside their allowed set are refused at load with a
one-line :class:`~mixsize_ray.errors.ConfigError` naming the field.

Example:
    >>> cfg = load_config(None, ["regime.sizes=[16,32]", "regime.probs=[0.5,0.5]", "regime.mode=B+"])
    >>> cfg.regime.mode, cfg.regime.sizes
    ('B+', [16, 32])
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mixsize_ray.core.choices import DATASETS, MODELS, STYLES, WEIGHT_DECAY_ON
from mixsize_ray.core.lr import SCALING_BY as LR_SCALING_BY
from mixsize_ray.core.lr import SCALING_RULES as LR_SCALINGS
from mixsize_ray.core.lr import SCHEDULE_KINDS as LR_SCHEDULES
from mixsize_ray.core.regime import MODES, SAMPLINGS, RegimeSpec
from mixsize_ray.errors import ConfigError

# The allowed values of modes, samplings, datasets, styles, models, LR schedules and scalings and weight decay
# are declared once, next to the code that uses them (imported above); these are the train loop's own.
OPTIMIZERS = ("sgd", "adamw")
DATA_STYLES = ("auto", *STYLES)
AMP_MODES = ("auto", "none", "bf16", "fp16")  # auto: bf16 where the device supports it, else none


@dataclass
class DataConfig:
    """Dataset. ``train_size``/``test_size`` are image counts (subsample; None = whole split).

    ``style`` picks the augmentation family: ``auto`` = the dataset's own (CIFAR-style pad-crop-flip for
    shapes/CIFAR, ImageNet-style RandomResizedCrop for an ImageFolder); ``cifar`` on an ImageFolder of small
    images resizes each image to ``native_size`` (pixels; None = 32) and pad-crop-flips it there.
    ``mean``/``std`` (three numbers each, RGB in [0, 1]) replace the dataset's normalisation.
    """

    name: str = "shapes"
    root: str | None = None
    train_size: int | None = 10000
    test_size: int | None = 2000
    seed: int = 0
    num_workers: int = 2
    style: str = "auto"
    native_size: int | None = None
    mean: list[float] | None = None
    std: list[float] | None = None


@dataclass
class ModelConfig:
    """Model by name; ``num_classes`` None = the dataset's."""

    name: str = "resnet20"
    num_classes: int | None = None


@dataclass
class RegimeConfig(RegimeSpec):
    """MixSize regime: sizes (pixels), per-step (or per-image) probabilities, base (S0, B0, D0), mode,
    sampling, tolerance, caps. The keys and their defaults are :class:`~mixsize_ray.core.regime.RegimeSpec`'s.

    ``base_batch`` is the GLOBAL batch (all ranks). ``tolerance`` is the allowed relative deviation of the
    realised per-step cost S^2*B*D from S0^2*B0*D0.
    """


@dataclass
class OptimConfig:
    """Optimizer, LR schedule, LR scaling and smoothing.

    ``milestones`` are fractions of the total steps; ``milestone_epochs`` (if set) replaces them with epoch
    numbers (Goyal et al.'s ImageNet recipe decays at epochs 30/60/80 of 90). ``weight_decay_on``:
    ``weights`` (default; conv and linear weights only, as the official ``weight_decay_config`` and the
    paper: no decay on BatchNorm parameters or biases) or ``all`` (every parameter). ``lr_scaling`` with
    ``lr_scaling_by: mean`` (default) scales the LR once by the regime's mean batch over B0 (paper section
    5.2, linear); ``step`` rescales it by every step's batch. ``smoothing_alpha`` None disables gradient
    smoothing (the official code uses 0.9).
    """

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    milestones: list[float] = field(default_factory=lambda: [0.3, 0.6, 0.8])
    milestone_epochs: list[int] | None = None
    gamma: float = 0.1
    warmup_steps: int = 0
    weight_decay_on: str = "weights"
    lr_scaling: str = "none"
    lr_scaling_by: str = "mean"
    smoothing_alpha: float | None = None
    label_smoothing: float = 0.0
    per_image_loss: bool = False


@dataclass
class TrainConfig:
    """Training loop. ``eval_size`` None = regime.base_size; ``sweep_sizes`` None = the dataset default.
    ``inject_fault`` (testing the recovery paths only) ``"after_log@E"`` makes rank 0 exit hard once, right
    after epoch E's MLflow write and before its checkpoint is reported (:mod:`mixsize_ray.train.fault`).
    ``step_trace`` (measuring, ``benchmarks/gpu_check.py``) records every step's time and peak memory and the
    time of warm-up, epochs, validation, calibration and sweep into the last checkpoint's ``step_trace.json``
    (:mod:`mixsize_ray.train.step_trace`; it syncs the device around each of those phases)."""

    name: str = "mixsize"
    epochs: int = 10
    max_steps_per_epoch: int | None = None
    seed: int = 0
    eval_size: int | None = None
    eval_every: int = 1
    sweep_sizes: list[int] | None = None
    calibrate_batches: int = 200
    eval_batch_size: int = 256
    amp: str = "auto"  # train/precision.py: bf16 on a CUDA device that supports it, else none (CPU: always none)
    channels_last: bool | str = "auto"  # true, false or auto (on for CUDA); CPU: always off
    compile: bool = False
    output_dir: str = "runs"
    num_to_keep: int = 2
    max_failures: int = 1  # a preemptible cluster loses workers: survive one by default (-1: always retry)
    checkpoint_every_steps: int | None = None
    inject_fault: str | None = None
    step_trace: bool = False


@dataclass
class RayConfig:
    """Ray cluster: ``address`` None = RAY_ADDRESS or a fresh local cluster. ``storage_path`` None = output_dir.

    ``autoscaling`` True skips the "GPUs present" preflight (an autoscaler adds GPU nodes on demand).
    """

    address: str | None = None
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    storage_path: str | None = None
    autoscaling: bool = False


@dataclass
class TrackingConfig:
    """MLflow: ``uri`` None = MLFLOW_TRACKING_URI or sqlite:///mlflow.db in the working directory.

    ``run_name`` None = train.name. ``parent_run_id`` nests the run under an existing run (a search's
    parent). ``register_model`` names a registered model to add a version to. ``model_format`` is the
    MLflow PyTorch serialization of the logged model: ``pickle`` (the SizeAwareModel itself) or ``pt2``
    (torch.export graph that selects per-size BN statistics by input size; pickle-free). ``retries`` is the
    attempts per logging call before a record is kept in the local spool; ``timeout_s`` (seconds) bounds
    the preflight check and each HTTP request.
    """

    enabled: bool = True
    uri: str | None = None
    experiment: str = "mixsize-ray"
    run_name: str | None = None
    parent_run_id: str | None = None
    register_model: str | None = None
    log_model: bool = True
    model_format: str = "pickle"
    retries: int = 3
    timeout_s: float = 10.0


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    regime: RegimeConfig = field(default_factory=RegimeConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain YAML-able data (for checkpoints and trackers)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def flat(self) -> dict[str, Any]:
        """Flattened ``section.key`` mapping; list values of the regime spelled out as ``regime.p_<size>``."""
        out: dict[str, Any] = {}
        for sec, values in self.to_dict().items():
            for k, v in values.items():
                out[f"{sec}.{k}"] = v
        for s, p in zip(self.regime.sizes, self.regime.probs, strict=False):
            out[f"regime.p_{s}"] = p
        return out


_SECTION_TYPES = {
    "data": DataConfig,
    "model": ModelConfig,
    "regime": RegimeConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
    "ray": RayConfig,
    "tracking": TrackingConfig,
}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(fieldname: str, tp: Any, value: Any) -> Any:
    """Check ``value`` against the annotation ``tp`` (int, float, str, bool, list[...], X | None)."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if bool in inner and str in inner and isinstance(value, bool | str):  # a switch with named settings
            return value
        return _coerce(fieldname, inner[0], value)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(fieldname, f"a list of {_type_name(item_tp)}", value)
        return [_coerce(f"{fieldname}[{i}]", item_tp, v) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(fieldname, "true or false", value)
        return value
    if tp is int:
        if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
                or int(value) != value):
            raise ConfigError(fieldname, "an integer", value)
        return int(value)
    if tp is float:
        if isinstance(value, str) and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+", value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(fieldname, "a finite number", value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(fieldname, "a string", value)
        return value
    return value


def _build_section(name: str, values: Any) -> Any:
    cls = _SECTION_TYPES[name]
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(name, "a mapping of keys to values", values)
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in values.items():
        if k not in hints:
            raise ConfigError(f"{name}.{k}", f"one of the keys {allowed}", k, hint="unknown key")
        kwargs[k] = _coerce(f"{name}.{k}", hints[k], v)
    return cls(**kwargs)


def _choice(fieldname: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(fieldname, f"one of {list(allowed)}", value)


def _positive(fieldname: str, value: Any, minimum: float = 1, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value < minimum:
        raise ConfigError(fieldname, f">= {minimum}", value)


MODEL_FORMATS = ("pickle", "pt2")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def _validate_tracking(t: TrackingConfig) -> None:
    """tracking.*: URI scheme (MLflow 3 has no plain file store), names, run id shape, retry bounds."""
    if t.uri is not None:
        from mixsize_ray.tracking.uri import check_scheme

        check_scheme(t.uri)
    if not t.experiment.strip():
        raise ConfigError("tracking.experiment", "a non-empty experiment name", t.experiment)
    for name in ("run_name", "register_model"):
        value = getattr(t, name)
        if value is not None and not value.strip():
            raise ConfigError(f"tracking.{name}", "null or a non-empty name", value)
    if t.parent_run_id is not None and not _RUN_ID.match(t.parent_run_id):
        raise ConfigError("tracking.parent_run_id", "null or an MLflow run id (32 lowercase hex digits)",
                          t.parent_run_id)
    _choice("tracking.model_format", t.model_format, MODEL_FORMATS)
    _positive("tracking.retries", t.retries)
    if not t.timeout_s > 0:
        raise ConfigError("tracking.timeout_s", "> 0 (seconds)", t.timeout_s)


def validate(cfg: Config) -> Config:
    """Check every value against its allowed set or range; raise one-line ConfigError on the first bad one."""
    _choice("data.name", cfg.data.name, DATASETS)
    _positive("data.train_size", cfg.data.train_size, allow_none=True)
    _positive("data.test_size", cfg.data.test_size, allow_none=True)
    _positive("data.num_workers", cfg.data.num_workers, minimum=0)
    _choice("data.style", cfg.data.style, DATA_STYLES)
    _positive("data.native_size", cfg.data.native_size, minimum=8, allow_none=True)
    for key in ("mean", "std"):
        v = getattr(cfg.data, key)
        if v is not None and (len(v) != 3 or (key == "std" and any(x <= 0 for x in v))):
            raise ConfigError(f"data.{key}", "null or three numbers (RGB" + (", each > 0)" if key == "std" else ")"), v)
    _choice("model.name", cfg.model.name, MODELS)
    _positive("model.num_classes", cfg.model.num_classes, minimum=2, allow_none=True)
    _choice("regime.mode", cfg.regime.mode, MODES)
    _choice("regime.sampling", cfg.regime.sampling, SAMPLINGS)
    _choice("optim.name", cfg.optim.name, OPTIMIZERS)
    _choice("optim.schedule", cfg.optim.schedule, LR_SCHEDULES)
    _choice("optim.lr_scaling", cfg.optim.lr_scaling, LR_SCALINGS)
    _choice("optim.lr_scaling_by", cfg.optim.lr_scaling_by, LR_SCALING_BY)
    if not cfg.optim.lr > 0:
        raise ConfigError("optim.lr", "> 0", cfg.optim.lr)
    a = cfg.optim.smoothing_alpha
    if a is not None and not 0.0 <= a < 1.0:
        raise ConfigError("optim.smoothing_alpha", "null (off) or a number in [0, 1)", a)
    if not 0.0 <= cfg.optim.label_smoothing < 1.0:
        raise ConfigError("optim.label_smoothing", "a number in [0, 1)", cfg.optim.label_smoothing)
    if any(not 0.0 < m < 1.0 for m in cfg.optim.milestones):
        raise ConfigError("optim.milestones", "fractions of training in (0, 1)", cfg.optim.milestones)
    me = cfg.optim.milestone_epochs
    if me is not None and (any(m < 1 or m >= cfg.train.epochs for m in me) or sorted(set(me)) != list(me)):
        raise ConfigError("optim.milestone_epochs", f"null or increasing epochs in [1, train.epochs={cfg.train.epochs})", me)
    _choice("optim.weight_decay_on", cfg.optim.weight_decay_on, WEIGHT_DECAY_ON)
    if not cfg.optim.weight_decay >= 0:
        raise ConfigError("optim.weight_decay", ">= 0", cfg.optim.weight_decay)
    if not 0 <= cfg.optim.momentum < 1:
        raise ConfigError("optim.momentum", "a number in [0, 1)", cfg.optim.momentum)
    _positive("optim.warmup_steps", cfg.optim.warmup_steps, minimum=0)
    _choice("train.amp", cfg.train.amp, AMP_MODES)
    if cfg.train.channels_last not in (True, False, "auto"):
        raise ConfigError("train.channels_last", "true, false or auto", cfg.train.channels_last)
    _positive("train.epochs", cfg.train.epochs)
    _positive("train.max_steps_per_epoch", cfg.train.max_steps_per_epoch, allow_none=True)
    _positive("train.eval_size", cfg.train.eval_size, allow_none=True)
    _positive("train.eval_every", cfg.train.eval_every)
    _positive("train.calibrate_batches", cfg.train.calibrate_batches)
    _positive("train.eval_batch_size", cfg.train.eval_batch_size)
    _positive("train.num_to_keep", cfg.train.num_to_keep)
    _positive("train.max_failures", cfg.train.max_failures, minimum=-1)
    _positive("train.checkpoint_every_steps", cfg.train.checkpoint_every_steps, allow_none=True)
    f = cfg.train.inject_fault
    if f is not None and not re.fullmatch(r"after_log@\d+", f):
        raise ConfigError("train.inject_fault", "null or after_log@EPOCH (testing only)", f)
    if cfg.train.sweep_sizes is not None:
        if not cfg.train.sweep_sizes or any(s <= 0 for s in cfg.train.sweep_sizes):
            raise ConfigError("train.sweep_sizes", "a non-empty list of sizes > 0", cfg.train.sweep_sizes)
    _positive("ray.num_workers", cfg.ray.num_workers)
    _validate_tracking(cfg.tracking)
    if not cfg.ray.cpus_per_worker > 0:
        raise ConfigError("ray.cpus_per_worker", "> 0", cfg.ray.cpus_per_worker)
    # The regime's fields are validated here; whether every size meets the budget is decided where the
    # regime is solved, once per process, for the real dataset (train.preflight, `regime`, tune trials).
    from mixsize_ray.core.regime import regime_from_config

    regime_from_config(cfg).validate()
    return cfg


def parse_override(text: str) -> tuple[str, str, Any]:
    """``"section.key=value"`` -> (section, key, YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError("--set", "section.key=value", text)
    path, raw = text.split("=", 1)
    parts = path.strip().split(".")
    if parts[0] not in _SECTION_TYPES:
        raise ConfigError("--set", f"section.key=value with section in {list(_SECTION_TYPES)}", text)
    if len(parts) != 2 or not parts[1]:
        keys = [f.name for f in dataclasses.fields(_SECTION_TYPES[parts[0]])]
        raise ConfigError("--set", f"{parts[0]}.KEY=value with KEY in {keys}", text)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError("--set", "a YAML value after '='", raw) from None
    return parts[0], parts[1], value


def field_type(path: str) -> Any:
    """The type of config field ``section.key`` (``X | None`` read as ``X``); a ConfigError naming ``path``
    when there is no such field.

    Example:
        >>> field_type("optim.lr"), field_type("optim.smoothing_alpha"), field_type("regime.sizes")
        (<class 'float'>, <class 'float'>, list[int])
    """
    parts = path.split(".")
    if len(parts) != 2 or parts[0] not in _SECTION_TYPES:
        raise ConfigError(path, f"section.key with section in {list(_SECTION_TYPES)}", path, hint="unknown key")
    cls = _SECTION_TYPES[parts[0]]
    hints = typing.get_type_hints(cls)
    if parts[1] not in hints:
        allowed = [f.name for f in dataclasses.fields(cls)]
        raise ConfigError(path, f"one of the keys {allowed}", parts[1], hint="unknown key")
    tp = hints[parts[1]]
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0] if len(args) == 1 else tp
    return tp


def config_from_dict(raw: dict[str, Any] | None, overrides: list[str] | None = None) -> Config:
    """Build and validate a Config from plain data plus ``section.key=value`` overrides."""
    return validate(build_config(raw, overrides))


def build_config(raw: dict[str, Any] | None, overrides: list[str] | None = None) -> Config:
    """A typed Config from plain data plus overrides: sections, keys and types are checked, values are not
    (:func:`validate` does that). For a part of a config, e.g. the shared part of a search space.

    Example:
        >>> build_config({"optim": {"lr": "1e-3"}}).optim.lr
        0.001
    """
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError("config", "a YAML mapping of sections", type(raw).__name__)
    raw = dict(raw or {})
    for sec in raw:
        if sec not in _SECTION_TYPES:
            raise ConfigError(sec, f"one of the sections {list(_SECTION_TYPES)}", sec, hint="unknown section")
    merged = {k: dict(v or {}) if isinstance(v, dict) or v is None else v for k, v in raw.items()}
    for item in overrides or []:
        sec, key, value = parse_override(item)
        merged.setdefault(sec, {})[key] = value
    return Config(**{name: _build_section(name, merged.get(name)) for name in _SECTION_TYPES})


def read_yaml(path: Path, field: str) -> Any:
    """A YAML file's content (None when empty), read safely: unreadable, non-UTF-8 or malformed files are a
    one-line :class:`ConfigError` naming ``field`` and the file.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "bad.yaml"
        >>> _ = f.write_bytes(b"train: {epochs: 2}\\n\\xff")
        >>> try:
        ...     read_yaml(f, "config")
        ... except ConfigError as e:
        ...     print(str(e).split(" (")[0].replace(str(f), "bad.yaml"))
        config: expected a UTF-8 text file, got 'bad.yaml'
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(field, "a UTF-8 text file", str(path)) from None
    except OSError as e:
        raise ConfigError(field, "a readable file", str(path), hint=e.strerror) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(field, f"valid YAML{where}", str(path)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config file (None = all defaults), apply overrides, validate."""
    raw: Any = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError("config", "an existing YAML file", str(path))
        raw = read_yaml(p, "config")
        if raw is None:  # an empty file is a mistake, not a request for every default
            raise ConfigError("config", "a YAML mapping of sections (the file is empty)", str(path))
        if not isinstance(raw, dict):
            raise ConfigError("config", "a YAML mapping of sections", str(path))
    return config_from_dict(raw, overrides)
