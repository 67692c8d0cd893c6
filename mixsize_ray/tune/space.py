"""The define-by-run Optuna space and the pure function that turns a trial's parameters into its config.

Parameters (Optuna names): ``regime.mode``; one ``u_<S>`` in (0, 1] per candidate size (absent in the
``fixed`` control arm, which trains at S0 alone); one per searched config key (``optim.lr``, ...).
The size distribution is the flat Dirichlet ``e_i = -log u_i``, ``p_i = floor + (1 - K*floor) e_i / sum e``
(with ``allow_drop``: ``p_i = e_i / sum e`` and sizes under ``floor`` dropped, the rest renormalised).
The budget solver then decides (B_i, D_i) from the fixed base (S0, B0, D0), so every trial of a mode has
the same per-step cost S0^2*B0*D0. The define-by-run function only does this arithmetic and stores the
result as Optuna user attributes (probabilities, solved table, reason if infeasible) and constraints
(``Trial.set_constraint``).

Example:
    >>> sizes, probs = simplex_probs([16, 32], [0.5, 0.25], floor=0.1, allow_drop=False)
    >>> sizes, [round(p, 4) for p in probs]
    ([16, 32], [0.3667, 0.6333])
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from mixsize_ray.errors import ConfigError
from mixsize_ray.tune.objective import infeasible_reason, regime_facts
from mixsize_ray.tune.spec import SHORTCUTS, SearchSpec

U_LOW = 1e-12  # lower end of each u_i (e_i = -log u_i <= 27.6)


def simplex_probs(sizes: list[int] | tuple[int, ...], u: list[float], floor: float,
                  allow_drop: bool) -> tuple[list[int], list[float]]:
    """(sizes kept, their probabilities) from uniform draws ``u`` (one per size); probabilities sum to 1."""
    e = [-math.log(max(x, U_LOW)) for x in u]
    total = sum(e)
    shares = [x / total for x in e] if total > 0 else [1.0 / len(e)] * len(e)
    if not allow_drop:
        k = len(sizes)
        return list(sizes), [floor + (1.0 - k * floor) * s for s in shares]
    keep = [i for i, s in enumerate(shares) if s >= floor] or [max(range(len(shares)), key=shares.__getitem__)]
    kept = sum(shares[i] for i in keep)
    return [sizes[i] for i in keep], [shares[i] / kept for i in keep]


def probs_to_u(sizes: tuple[int, ...], probs: list[float], floor: float, allow_drop: bool) -> dict[str, float]:
    """The ``u_<S>`` parameters that reproduce ``probs`` (to enqueue a known regime, e.g. a paper table)."""
    if not isinstance(probs, list) or len(probs) != len(sizes) or abs(sum(probs) - 1) > 1e-6:
        raise ConfigError("search.enqueue.probs", f"{len(sizes)} probabilities (one per space size) summing to 1",
                          probs)
    k = len(sizes)
    out = {}
    for s, p in zip(sizes, probs, strict=True):
        if allow_drop:
            if p != 0 and p < floor:
                raise ConfigError("search.enqueue.probs", f"0 or >= the floor {floor}", probs)
            e = p
        else:
            if p < floor - 1e-12:
                raise ConfigError("search.enqueue.probs", f"values >= the floor {floor}", probs)
            e = (p - floor) / (1.0 - k * floor)
        out[f"u_{s}"] = math.exp(-e) if e > 0 else 1.0
    return out


@dataclass(frozen=True)
class TrialContext:
    """Where a search's trials write: Ray Train storage, the MLflow store and the parent run."""

    experiment: str
    trials_dir: str
    tracking_uri: str | None = None
    parent_run_id: str | None = None


@dataclass
class TrialPlan:
    """What a trial's parameters mean: its training config (None if invalid) and its constraints."""

    number: int
    params: dict[str, Any]
    sizes: list[int]
    probs: list[float]
    raw_config: dict[str, Any]
    config: Any = None
    facts: dict[str, float] = field(default_factory=dict)
    constraints: list[float] = field(default_factory=list)
    table: Any = None
    reason: str | None = None

    def user_attrs(self) -> dict[str, Any]:
        """What the define-by-run function records on the Optuna trial (JSON-able)."""
        t = self.table
        return {
            "sizes": self.sizes, "probs": self.probs, "facts": self.facts,
            "infeasible_reason": self.reason,
            "batches": [e.batch for e in t.entries] if t else None,
            "duplicates": [e.duplicates for e in t.entries] if t else None,
            "budget_ratios": [e.budget_ratio for e in t.entries] if t else None,
            "train_seed": self.config.train.seed if self.config is not None else None,
            "config": self.config.to_dict() if self.config is not None else self.raw_config,
        }


def _tracking_fields() -> set[str]:
    import dataclasses

    from mixsize_ray.config import TrackingConfig

    return {f.name for f in dataclasses.fields(TrackingConfig)}


def build_trial(spec: SearchSpec, ctx: TrialContext, params: dict[str, Any], number: int) -> TrialPlan:
    """Parameters -> trial config, solved regime and constraint values (pure; raises nothing for bad combos)."""
    from mixsize_ray.config import config_from_dict
    from mixsize_ray.core.regime import regime_from_config

    s0, b0, d0 = spec.base
    mode = params.get("regime.mode", spec.dim("regime.mode").value)
    if mode == "fixed":
        sizes, probs = [s0], [1.0]
    else:
        u = [params[f"u_{s}"] for s in spec.simplex.sizes]
        sizes, probs = simplex_probs(spec.simplex.sizes, u, spec.simplex.floor, spec.simplex.allow_drop)
    raw = copy.deepcopy(spec.fixed)
    regime = raw.setdefault("regime", {})
    regime.update(sizes=sizes, probs=probs, base_size=s0, base_batch=b0, base_duplicates=d0)
    for d in spec.dims:
        sec, key = d.key.split(".")
        raw.setdefault(sec, {})[key] = params[d.name] if d.searched else d.value
    train = raw.setdefault("train", {})
    if spec.search.trial_seed == "per-trial":
        train["seed"] = int(train.get("seed", 0)) + number
    train.update(name=f"trial_{number:04d}", output_dir=ctx.trials_dir)
    tracking = raw.setdefault("tracking", {})
    if ctx.tracking_uri:
        tracking["uri"] = ctx.tracking_uri
    names = _tracking_fields()
    if "parent_run_id" in names and ctx.parent_run_id:
        tracking["parent_run_id"] = ctx.parent_run_id
    if "run_name" in names:
        tracking["run_name"] = f"{ctx.experiment}/trial_{number:04d}"
    plan = TrialPlan(number, dict(params), list(sizes), list(probs), raw)
    try:
        plan.config = config_from_dict(raw)
        plan.table = regime_from_config(plan.config).solve()
    except ConfigError as e:
        plan.reason = f"invalid config: {e}"
        return plan
    plan.facts = regime_facts(plan.config, plan.table)
    plan.constraints = [c.value(plan.facts) for c in spec.constraints]
    plan.reason = infeasible_reason(list(spec.constraints), plan.constraints, plan.facts)
    return plan


class RegimeSpace:
    """Define-by-run function for :class:`ray.tune.search.optuna.OptunaSearch` (picklable, computes nothing).

    Returns ``{"trial_number": n}``; Tune merges it with the suggested parameters into the trial config.
    """

    def __init__(self, spec: SearchSpec, ctx: TrialContext):
        self.spec, self.ctx = spec, ctx

    def __call__(self, trial: Any) -> dict[str, Any]:
        spec = self.spec
        params: dict[str, Any] = {}
        mode_dim = spec.dim("regime.mode")
        mode = mode_dim.suggest(trial)
        if mode_dim.searched:
            params[mode_dim.name] = mode
        if mode != "fixed":
            for s in spec.simplex.sizes:
                params[f"u_{s}"] = trial.suggest_float(f"u_{s}", U_LOW, 1.0)
        for d in spec.dims:
            if d.searched and d.key != "regime.mode":
                params[d.name] = d.suggest(trial)
        plan = build_trial(spec, self.ctx, params, trial.number)
        for k, v in plan.user_attrs().items():
            trial.set_user_attr(k, v)
        with warnings.catch_warnings():  # a re-queued trial already holds the same constraint values
            warnings.filterwarnings("ignore", message="The constraint value is ignored")
            for c, v in zip(spec.constraints, plan.constraints, strict=False):
                trial.set_constraint(c.name, v)
            if plan.config is None:
                trial.set_constraint("valid_config", 1.0)
        return {"trial_number": trial.number}


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


def check_space(spec: SearchSpec) -> None:
    """Up-front checks: every searched mode meets the budget at every size; every bound and enqueued point
    gives a valid training config. Raises a one-line :class:`ConfigError`."""
    from mixsize_ray.config import RegimeConfig, config_from_dict
    from mixsize_ray.core.regime import SizeRegime

    fixed_regime = {**RegimeConfig().__dict__, **spec.fixed.get("regime", {})}
    world = int(spec.fixed.get("ray", {}).get("num_workers", 1) or 1)
    sizes = list(spec.simplex.sizes)
    for mode in spec.modes:
        if mode == "fixed":
            continue
        try:
            SizeRegime(sizes, [1.0 / len(sizes)] * len(sizes), base_size=spec.base[0], base_batch=spec.base[1],
                       base_duplicates=spec.base[2], mode=mode, sampling="step",
                       tolerance=fixed_regime["tolerance"], max_batch=fixed_regime["max_batch"],
                       max_duplicates=fixed_regime["max_duplicates"], world_size=world).solve()
        except ConfigError as e:
            raise ConfigError("space.sizes", f"sizes that meet the budget S0^2*B0*D0 in mode {mode}",
                              sizes, hint=str(e)) from None
    ctx = TrialContext("check", "/tmp")
    base = default_params(spec)
    points = [base] + [{**base, d.name: v} for d in spec.dims if d.searched for v in d.candidates()]
    if "fixed" in spec.modes:
        points.append({**base, "regime.mode": "fixed"})
    for i, entry in enumerate(spec.search.enqueue):
        if not isinstance(entry, dict) or not entry:
            raise ConfigError(f"search.enqueue[{i}]", "a non-empty mapping of parameters", entry)
        points.append({**base, **enqueue_params(spec, entry)})
    for point in points:
        plan = build_trial(spec, ctx, point, 0)
        if plan.config is None:
            config_from_dict(plan.raw_config)  # re-raise the one-line error naming the config key
