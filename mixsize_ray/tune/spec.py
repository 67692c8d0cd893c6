"""Search-space YAML -> :class:`SearchSpec`, validated up front (schema: ``search_spaces/SEARCH_SPACES.md``),
and what a point of the space means as a training config (:func:`trial_config`, pure, in memory).

Every mistake is one :class:`ConfigError` naming the field by its path in the YAML (``fixed.optim.lr``,
``space.lr``, ``space.params.train.seed``, ``objectives[0].size``): unknown keys, ranges with
``low >= high``, an empty or single-size simplex, sizes that cannot meet the budget in a searched mode, an
objective naming a size the sweep does not evaluate, values the training config would refuse (every bound,
choice and enqueued point is turned into a training config in memory). Nothing starts before this passes.

``fixed`` is held as a typed :class:`~mixsize_ray.config.Config` (defaults filled in); the space and each
trial set the regime and the searched keys on top of it.

Example:
    >>> spec = load_space("search_spaces/quickstart.yaml")
    >>> [o.name for o in spec.objectives], spec.search.num_samples, spec.fixed.train.epochs
    (['top1_cal_band_16_48', 'top1_cal_32'], 2, 6)
    >>> cfg = trial_config(spec, default_params(spec))
    >>> cfg["regime"]["mode"], cfg["regime"]["sizes"], [round(p, 2) for p in cfg["regime"]["probs"]]
    ('B+', [16, 24, 32, 40], [0.25, 0.25, 0.25, 0.25])
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mixsize_ray.config import Config, build_config, config_from_dict, parse_override, read_yaml
from mixsize_ray.errors import ConfigError
from mixsize_ray.tune.dims import Dimension, at_field, parse_dimension
from mixsize_ray.tune.objective import KINDS, Constraint, Objective
from mixsize_ray.tune.pbt_options import SCHEDULERS, PBTOptions, parse_pbt
from mixsize_ray.tune.simplex import probs_to_u, simplex_probs

TOP_KEYS = ("name", "description", "fixed", "space", "objectives", "constraints", "search")
SPACE_KEYS = ("sizes", "simplex", "base", "mode", "sampling", "lr", "lr_scaling", "smoothing_alpha", "params")
SHORTCUTS = {"mode": "regime.mode", "sampling": "regime.sampling", "lr": "optim.lr",
             "lr_scaling": "optim.lr_scaling", "smoothing_alpha": "optim.smoothing_alpha"}
DEFAULT_MODES = ["B+", "D+"]
# set by the space or per trial: never in `fixed` or `space.params`
RESERVED = ("regime.sizes", "regime.probs", "regime.base_size", "regime.base_batch", "regime.base_duplicates",
            "train.name", "train.output_dir", "tracking.parent_run_id", "tracking.run_name")
# where the YAML sets the regime keys the space decides (errors about them name these)
SPACE_FIELDS = {"regime.sizes": "space.sizes", "regime.probs": "space.simplex",
                "regime.base_size": "space.base.size", "regime.base_batch": "space.base.batch",
                "regime.base_duplicates": "space.base.duplicates"}
SAMPLERS = ("tpe", "nsga2", "gp", "random")
TRIAL_SEEDS = ("fixed", "per-trial")
SEARCH_DEFAULTS: dict[str, Any] = {
    "num_samples": 8, "max_concurrent": 2, "sampler": "tpe", "seed": 0, "trial_seed": "fixed", "asha": None,
    "storage": None, "output_dir": "runs/tune", "enqueue": [], "top_k": 5, "scheduler": "optuna", "pbt": None,
    "max_failures": 1,
}
ASHA_DEFAULTS = {"grace_period": 1, "reduction_factor": 2, "metric": "val_top1"}


@dataclass(frozen=True)
class Simplex:
    """p over the candidate sizes: flat Dirichlet (normalised -log u), each p_i >= ``floor``.

    With ``allow_drop`` a size whose share falls under ``floor`` is dropped (p_i = 0) instead of raised.
    """

    sizes: tuple[int, ...]
    floor: float = 0.02
    allow_drop: bool = False


@dataclass(frozen=True)
class SearchOptions:
    num_samples: int = 8
    max_concurrent: int = 2
    sampler: str = "tpe"
    seed: int = 0
    trial_seed: str = "fixed"
    asha: dict[str, Any] | None = None
    storage: str | None = None
    output_dir: str = "runs/tune"
    enqueue: tuple[dict[str, Any], ...] = ()
    top_k: int = 5
    scheduler: str = "optuna"  # or "pbt" (then `pbt` holds its options)
    pbt: PBTOptions | None = None
    max_failures: int = 1  # Tune retries of a trial whose process or node died (a preempted node)


@dataclass(frozen=True)
class SearchSpec:
    """A validated search space. ``fixed`` is the typed training config every trial shares (defaults filled
    in; the regime's sizes, probabilities and base and every searched key are set per trial on top of it)."""

    name: str
    fixed: Config
    simplex: Simplex
    base: tuple[int, int, int]
    dims: tuple[Dimension, ...]
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    search: SearchOptions
    sweep_sizes: tuple[int, ...]
    description: str = ""
    source: str = ""  # the YAML text as given
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def dim(self, key: str) -> Dimension:
        for d in self.dims:
            if d.key == key:
                return d
        raise KeyError(key)

    @property
    def modes(self) -> list[str]:
        return [str(m) for m in self.dim("regime.mode").candidates()]


def _mapping(field_name: str, raw: Any, allowed: tuple[str, ...] | list[str] | None) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(field_name, "a mapping", raw)
    if allowed is not None:
        for k in raw:
            if k not in allowed:
                raise ConfigError(f"{field_name}.{k}" if field_name else str(k), f"one of the keys {list(allowed)}",
                                  k, hint="unknown key")
    return raw


def _int(field_name: str, v: Any, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(field_name, f"an integer >= {minimum}", v)
    return v


def _given_fixed(raw: Any, overrides: list[str]) -> dict[str, dict[str, Any]]:
    """The keys ``fixed`` (plus ``section.key=value`` overrides) sets explicitly, as plain data."""
    given: dict[str, dict[str, Any]] = {}
    for sec, values in _mapping("fixed", raw, None).items():
        given[sec] = dict(_mapping(f"fixed.{sec}", values, None))
    for item in overrides:
        sec, key, value = parse_override(item)
        given.setdefault(sec, {})[key] = value
    for key in RESERVED:
        sec, k = key.split(".")
        if k in given.get(sec, {}):
            raise ConfigError(f"fixed.{key}", "to be left out (the space or each trial sets it)", given[sec][k])
    return given


def _typed_fixed(given: dict[str, dict[str, Any]]) -> Config:
    """``fixed`` as a typed Config (unknown sections or keys and wrong types named ``fixed.<section>.<key>``)."""
    try:
        return build_config(given)
    except ConfigError as e:
        raise at_field(e, f"fixed.{e.field}") from None


def _parse_sizes(space: dict[str, Any]) -> Simplex:
    sizes = space.get("sizes")
    if not isinstance(sizes, list) or len(sizes) < 2:
        raise ConfigError("space.sizes", "a list of >= 2 candidate sizes (a distribution needs two)", sizes)
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes) or len(set(sizes)) != len(sizes):
        raise ConfigError("space.sizes", "distinct integers >= 1", sizes)
    raw = _mapping("space.simplex", space.get("simplex"), ("floor", "allow_drop"))
    floor, allow_drop = raw.get("floor", 0.02), raw.get("allow_drop", False)
    if not isinstance(allow_drop, bool):
        raise ConfigError("space.simplex.allow_drop", "true or false", allow_drop)
    limit = 1.0 / len(sizes)
    if isinstance(floor, bool) or not isinstance(floor, int | float) or not 0 <= floor < limit:
        raise ConfigError("space.simplex.floor", f"a probability in [0, {limit:.4g}) (1 / number of sizes)", floor)
    if floor == 0 and not allow_drop:
        raise ConfigError("space.simplex.floor", "> 0 (or allow_drop: true to let sizes drop out)", floor)
    return Simplex(tuple(sizes), float(floor), allow_drop)


def _parse_base(space: dict[str, Any], d: Any) -> tuple[int, int, int]:
    """(S0, B0, D0) from ``space.base``; ``d``: the regime section of ``fixed`` (the config's defaults)."""
    raw = _mapping("space.base", space.get("base"), ("size", "batch", "duplicates"))
    return (_int("space.base.size", raw.get("size", d.base_size)),
            _int("space.base.batch", raw.get("batch", d.base_batch)),
            _int("space.base.duplicates", raw.get("duplicates", d.base_duplicates)))


def _parse_dims(space: dict[str, Any], given: dict[str, dict[str, Any]]) -> tuple[Dimension, ...]:
    dims = [parse_dimension(f"space.{short}", key, space[short] if short in space else
                            (DEFAULT_MODES if short == "mode" else None), name=key)
            for short, key in SHORTCUTS.items() if short in space or short == "mode"]
    params = _mapping("space.params", space.get("params"), None)
    for key, raw in params.items():
        if key in RESERVED or key in SHORTCUTS.values():
            short = {v: k for k, v in SHORTCUTS.items()}.get(key)
            raise ConfigError(f"space.params.{key}", f"a key the space does not set itself"
                              f"{f' (use space.{short})' if short else ''}", key)
        dims.append(parse_dimension(f"space.params.{key}", key, raw, name=key))
    for d in dims:
        sec, k = d.key.split(".")
        if k in given.get(sec, {}):
            raise ConfigError(f"fixed.{d.key}", f"to be left out ({d.field} sets it)", given[sec][k])
    modes = next(d for d in dims if d.key == "regime.mode").candidates()
    if any(m not in ("fixed", "B+", "D+") for m in modes):
        raise ConfigError("space.mode", "choices from ['B+', 'D+', 'fixed']", modes)
    if not [m for m in modes if m != "fixed"]:
        raise ConfigError("space.mode", "at least one of B+ or D+ (fixed is the control arm)", modes)
    return tuple(dims)


def _parse_objectives(raw: Any, s0: int, sweep: tuple[int, ...]) -> tuple[Objective, ...]:
    if raw is None:  # a search must say what it maximises: no silent default
        raise ConfigError("objectives", "a non-empty list of {kind: target|band|size|steps, ...} (required)", None)
    if not isinstance(raw, list) or not raw:
        raise ConfigError("objectives", "a non-empty list of {kind: target|band|size|steps, ...}", raw)
    out: list[Objective] = []
    for i, item in enumerate(raw):
        f = f"objectives[{i}]"
        item = _mapping(f, item, ("kind", "size", "low", "high", "calibrated"))
        kind, cal = item.get("kind"), item.get("calibrated", True)
        if kind not in KINDS:
            raise ConfigError(f"{f}.kind", f"one of {list(KINDS)}", kind)
        if not isinstance(cal, bool):
            raise ConfigError(f"{f}.calibrated", "true or false", cal)
        if kind in ("target", "size"):
            if kind == "size" and "size" not in item:
                raise ConfigError(f"{f}.size", "the size whose top-1 to maximise", None)
            size = _int(f"{f}.size", item.get("size", s0))
            if size not in sweep:
                raise ConfigError(f"{f}.size", f"a size the sweep evaluates {list(sweep)} "
                                  "(set fixed.train.sweep_sizes)", size)
            out.append(Objective(kind, (size,), cal))
        elif kind == "band":
            lo, hi = _int(f"{f}.low", item.get("low")), _int(f"{f}.high", item.get("high"))
            if not lo < hi:
                raise ConfigError(f, "low < high", {"low": lo, "high": hi})
            inside = tuple(s for s in sweep if lo <= s <= hi)
            if not inside:
                raise ConfigError(f, f"a band holding at least one evaluated size {list(sweep)}", [lo, hi])
            out.append(Objective(kind, inside, cal, lo, hi))
        else:
            out.append(Objective("steps", (), cal))
    names = [o.name for o in out]
    if len(set(names)) != len(names):
        raise ConfigError("objectives", "distinct objectives", names)
    return tuple(out)


def _parse_constraints(raw: Any) -> tuple[Constraint, ...]:
    raw = _mapping("constraints", raw, ("mean_size", "compute_ratio"))
    out: list[Constraint] = []
    if "mean_size" in raw:
        m = _mapping("constraints.mean_size", raw["mean_size"], ("low", "high"))
        for part in ("low", "high"):
            if part in m and (isinstance(m[part], bool) or not isinstance(m[part], int | float) or m[part] <= 0):
                raise ConfigError(f"constraints.mean_size.{part}", "a size > 0", m[part])
        if not m:
            raise ConfigError("constraints.mean_size", "low and/or high", m)
        if "low" in m and "high" in m and not m["low"] < m["high"]:
            raise ConfigError("constraints.mean_size", "low < high", m)
        out += [Constraint("mean_size", float(m[p]), p == "high") for p in ("low", "high") if p in m]
    if "compute_ratio" in raw:
        c = _mapping("constraints.compute_ratio", raw["compute_ratio"], ("max",))
        mx = c.get("max")
        if isinstance(mx, bool) or not isinstance(mx, int | float) or not mx > 0:
            raise ConfigError("constraints.compute_ratio.max", "a ratio > 0", mx)
        out.append(Constraint("compute_ratio", float(mx), True))
    return tuple(out)


def _parse_search(raw: Any) -> SearchOptions:
    raw = {**SEARCH_DEFAULTS, **_mapping("search", raw, list(SEARCH_DEFAULTS))}
    _int("search.num_samples", raw["num_samples"])
    _int("search.max_concurrent", raw["max_concurrent"])
    _int("search.seed", raw["seed"], minimum=0)
    _int("search.top_k", raw["top_k"])
    _int("search.max_failures", raw["max_failures"], minimum=0)
    if raw["sampler"] not in SAMPLERS:
        raise ConfigError("search.sampler", f"one of {list(SAMPLERS)}", raw["sampler"])
    if raw["trial_seed"] not in TRIAL_SEEDS:
        raise ConfigError("search.trial_seed", f"one of {list(TRIAL_SEEDS)}", raw["trial_seed"])
    asha = raw["asha"]
    if asha is not None:
        asha = {**ASHA_DEFAULTS, **_mapping("search.asha", asha if asha is not True else {}, list(ASHA_DEFAULTS))}
        _int("search.asha.grace_period", asha["grace_period"])
        _int("search.asha.reduction_factor", asha["reduction_factor"], minimum=2)
    for k in ("storage", "output_dir"):
        if raw[k] is not None and (not isinstance(raw[k], str) or not raw[k]):
            raise ConfigError(f"search.{k}", "a non-empty string", raw[k])
    if not raw["output_dir"]:
        raise ConfigError("search.output_dir", "a folder", raw["output_dir"])
    if not isinstance(raw["enqueue"], list) or any(not isinstance(e, dict) for e in raw["enqueue"]):
        raise ConfigError("search.enqueue", "a list of parameter mappings", raw["enqueue"])
    if raw["scheduler"] not in SCHEDULERS:
        raise ConfigError("search.scheduler", f"one of {list(SCHEDULERS)}", raw["scheduler"])
    pbt = None
    if raw["scheduler"] == "pbt":
        if asha is not None:
            raise ConfigError("search.asha", "to be left out with search.scheduler: pbt (one scheduler)", raw["asha"])
        pbt = parse_pbt(raw["pbt"], raw["seed"])
    elif raw["pbt"] is not None:
        raise ConfigError("search.pbt", "to be left out unless search.scheduler: pbt", raw["pbt"])
    return SearchOptions(raw["num_samples"], raw["max_concurrent"], raw["sampler"], raw["seed"],
                         raw["trial_seed"], asha, raw["storage"], raw["output_dir"], tuple(raw["enqueue"]),
                         raw["top_k"], raw["scheduler"], pbt, raw["max_failures"])


def _sweep_sizes(fixed: Config, s0: int) -> tuple[int, ...]:
    from mixsize_ray.core.evaluation import default_sizes
    from mixsize_ray.data.datasets import dataset_info

    if fixed.train.sweep_sizes:
        return tuple(fixed.train.sweep_sizes)
    try:
        style = dataset_info(fixed.data.name).style
    except ConfigError as e:
        raise at_field(e, f"fixed.{e.field}") from None
    return tuple(default_sizes(style, s0))


def trial_config(spec: SearchSpec, params: dict[str, Any], number: int = 0) -> dict[str, Any]:
    """The training config (plain data, not yet validated) of a point of the space: ``fixed``, the size
    distribution drawn by ``params`` (the ``fixed`` mode: S0 alone) on the base (S0, B0, D0), every searched
    key, and ``train.seed + number`` with ``search.trial_seed: per-trial``. Pure and in memory."""
    s0, b0, d0 = spec.base
    mode = params.get("regime.mode", spec.dim("regime.mode").value)
    if mode == "fixed":
        sizes, probs = [s0], [1.0]
    else:
        u = [params[f"u_{s}"] for s in spec.simplex.sizes]
        sizes, probs = simplex_probs(spec.simplex.sizes, u, spec.simplex.floor, spec.simplex.allow_drop)
    raw = spec.fixed.to_dict()
    raw["regime"].update(sizes=sizes, probs=probs, base_size=s0, base_batch=b0, base_duplicates=d0)
    for d in spec.dims:
        sec, key = d.key.split(".")
        raw[sec][key] = params[d.name] if d.searched else d.value
    if spec.search.trial_seed == "per-trial":
        raw["train"]["seed"] = spec.fixed.train.seed + number
    return raw


def yaml_field(spec: SearchSpec, config_field: str) -> str:
    """Where the search-space YAML sets training-config field ``config_field`` (``optim.lr`` ->
    ``space.lr`` when searched, ``regime.sizes`` -> ``space.sizes``, else ``fixed.optim.lr``)."""
    key = ".".join(config_field.split("[", 1)[0].split(".")[:2])
    for d in spec.dims:
        if d.key == key:
            return d.field or f"space.params.{key}"
    return SPACE_FIELDS.get(key, f"fixed.{config_field}")


def default_params(spec: SearchSpec) -> dict[str, Any]:
    """A valid parameter point: uniform p, the first non-fixed mode, every range's low end, first choices."""
    params: dict[str, Any] = {f"u_{s}": math.exp(-1.0) for s in spec.simplex.sizes}
    for d in spec.dims:
        if d.searched:
            params[d.name] = d.candidates()[0]
    if spec.dim("regime.mode").searched:
        params["regime.mode"] = next(m for m in spec.modes if m != "fixed")
    return params


def enqueue_params(spec: SearchSpec, entry: dict[str, Any]) -> dict[str, Any]:
    """A ``search.enqueue`` entry (shortcut or config keys, ``probs`` as a list) -> Optuna parameters."""
    out: dict[str, Any] = {}
    names = {d.name for d in spec.dims if d.searched} | {f"u_{s}" for s in spec.simplex.sizes}
    for k, v in entry.items():
        if k == "probs":
            out.update(probs_to_u(spec.simplex.sizes, v, spec.simplex.floor, spec.simplex.allow_drop))
            continue
        key = SHORTCUTS.get(k, k)
        if key not in names:
            raise ConfigError(f"search.enqueue.{k}", f"a searched parameter of this space {sorted(names)} or probs",
                              k, hint="unknown key")
        out[key] = v
    return out


def _check_budget(spec: SearchSpec) -> None:
    """Every searched mode meets the budget S0^2*B0*D0 at every candidate size (uniform p)."""
    from mixsize_ray.core.regime import SizeRegime

    r, sizes = spec.fixed.regime, list(spec.simplex.sizes)
    for mode in spec.modes:
        if mode == "fixed":
            continue
        try:
            SizeRegime(sizes, [1.0 / len(sizes)] * len(sizes), base_size=spec.base[0], base_batch=spec.base[1],
                       base_duplicates=spec.base[2], mode=mode, sampling="step", tolerance=r.tolerance,
                       max_batch=r.max_batch, max_duplicates=r.max_duplicates,
                       world_size=spec.fixed.ray.num_workers).solve()
        except ConfigError as e:
            raise ConfigError("space.sizes", f"sizes that meet the budget S0^2*B0*D0 in mode {mode}",
                              sizes, hint=str(e)) from None


def check_space(spec: SearchSpec) -> None:
    """Up-front checks, in memory (no file is written): every searched mode meets the budget at every size;
    every bound, choice and enqueued point gives a valid training config. Raises a one-line
    :class:`ConfigError` naming the field by its path in the YAML."""
    _check_budget(spec)
    base = default_params(spec)
    points = [base] + [{**base, d.name: v} for d in spec.dims if d.searched for v in d.candidates()]
    if "fixed" in spec.modes:
        points.append({**base, "regime.mode": "fixed"})
    for i, entry in enumerate(spec.search.enqueue):
        if not isinstance(entry, dict) or not entry:
            raise ConfigError(f"search.enqueue[{i}]", "a non-empty mapping of parameters", entry)
        points.append({**base, **enqueue_params(spec, entry)})
    from mixsize_ray.core.regime import regime_from_config

    for point in points:
        try:
            regime_from_config(config_from_dict(trial_config(spec, point))).solve()
        except ConfigError as e:
            where = yaml_field(spec, e.field)
            note = None if where.endswith(e.field) else f"{e.field} of the training config"
            raise at_field(e, where, note) from None


def parse_space(raw: Any, overrides: list[str] | None = None, source: str = "") -> SearchSpec:
    """Validate a parsed YAML mapping (plus ``section.key=value`` overrides of ``fixed``)."""
    raw = _mapping("", raw, TOP_KEYS)
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise ConfigError("name", "a name of letters, digits, '_', '-', '.' (at most 64)", name)
    description = raw.get("description") or ""
    given = _given_fixed(raw.get("fixed"), overrides or [])
    fixed = _typed_fixed(given)
    space = _mapping("space", raw.get("space"), SPACE_KEYS)
    if not space:
        raise ConfigError("space", "a mapping with at least sizes", raw.get("space"))
    simplex = _parse_sizes(space)
    base = _parse_base(space, fixed.regime)
    dims = _parse_dims(space, given)
    sweep = _sweep_sizes(fixed, base[0])
    spec = SearchSpec(
        name=name, fixed=fixed, simplex=simplex, base=base, dims=dims,
        objectives=_parse_objectives(raw.get("objectives"), base[0], sweep),
        constraints=_parse_constraints(raw.get("constraints")),
        search=_parse_search(raw.get("search")), sweep_sizes=sweep, description=str(description),
        source=source, raw=copy.deepcopy(raw),
    )
    asha = spec.search.asha
    if asha and asha["metric"] == "val_top1" and fixed.train.eval_every != 1:
        raise ConfigError("fixed.train.eval_every", "1 with search.asha on val_top1 (ASHA needs it every epoch)",
                          fixed.train.eval_every)
    if spec.search.pbt is not None:
        _check_pbt(spec)
    check_space(spec)
    return spec


def _check_pbt(spec: SearchSpec) -> None:
    """PBT needs a population of >= 2, a perturbation before the last epoch, and a mixed mode (the
    ``fixed`` arm has no distribution to mutate and is left out of the population)."""
    o, epochs = spec.search.pbt, spec.fixed.train.epochs
    if spec.search.num_samples < 2:
        raise ConfigError("search.num_samples", ">= 2 with search.scheduler: pbt (the population)",
                          spec.search.num_samples)
    if o.perturbation_interval >= epochs:
        raise ConfigError("search.pbt.perturbation_interval", f"fewer epochs than fixed.train.epochs ({epochs})",
                          o.perturbation_interval)


def load_space(path: str | Path, overrides: list[str] | None = None) -> SearchSpec:
    """Read and validate a search-space YAML file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("space", "an existing search-space YAML file", str(path))
    raw = read_yaml(p, "space")
    text = p.read_text(encoding="utf-8")
    if not isinstance(raw, dict):
        raise ConfigError("space", "a YAML mapping (name, fixed, space, objectives, ...)", str(path))
    return parse_space(raw, overrides, source=text)


def with_search(spec: SearchSpec, **changes: Any) -> SearchSpec:
    """A copy with some :class:`SearchOptions` replaced."""
    return replace(spec, search=replace(spec.search, **changes))
