"""The define-by-run Optuna space and a trial's plan: its training config, solved regime and constraints.

Parameters (Optuna names): ``regime.mode``; one ``u_<S>`` in (0, 1] per candidate size (absent in the
``fixed`` control arm, which trains at S0 alone); one per searched config key (``optim.lr``, ...).
The size distribution is the flat Dirichlet of :mod:`mixsize_ray.tune.simplex`; the point's training config
is :func:`mixsize_ray.tune.spec.trial_config`. The budget solver then decides (B_i, D_i) from the fixed
base (S0, B0, D0), so every trial of a mode has the same per-step cost S0^2*B0*D0. The define-by-run
function only does this arithmetic and stores the result as Optuna user attributes (probabilities, solved
table, reason if infeasible) and constraints (``Trial.set_constraint``).

Example:
    >>> import optuna
    >>> from mixsize_ray.tune.spec import load_space
    >>> spec = load_space("search_spaces/quickstart.yaml")
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    >>> trial = study.ask()
    >>> RegimeSpace(spec, TrialContext("demo", "runs/demo/trials"))(trial)
    {'trial_number': 0}
    >>> t = study.trials[0]
    >>> abs(sum(size_shares(t.user_attrs).values()) - 1) < 1e-9, t.user_attrs["config"]["train"]["name"]
    (True, 'trial_0000')
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from mixsize_ray.config import config_from_dict
from mixsize_ray.errors import ConfigError
from mixsize_ray.tune.objective import infeasible_reason, regime_facts
from mixsize_ray.tune.simplex import U_LOW
from mixsize_ray.tune.spec import SearchSpec, trial_config


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


def build_trial(spec: SearchSpec, ctx: TrialContext, params: dict[str, Any], number: int) -> TrialPlan:
    """Parameters -> trial config, solved regime and constraint values (pure; raises nothing for bad combos).
    The regime is solved by :func:`~mixsize_ray.train.preflight.solve_table`, once per process: the trial's
    own :func:`~mixsize_ray.train.launch.launch` reuses this table."""
    from mixsize_ray.train.preflight import solve_table

    raw = trial_config(spec, params, number)
    raw["train"].update(name=f"trial_{number:04d}", output_dir=ctx.trials_dir)
    tracking = raw["tracking"]
    if ctx.tracking_uri:
        tracking["uri"] = ctx.tracking_uri
    if ctx.parent_run_id:
        tracking["parent_run_id"] = ctx.parent_run_id
    tracking["run_name"] = f"{ctx.experiment}/trial_{number:04d}"
    plan = TrialPlan(number, dict(params), list(raw["regime"]["sizes"]), list(raw["regime"]["probs"]), raw)
    try:
        plan.config = config_from_dict(raw)
        plan.table = solve_table(plan.config)
    except ConfigError as e:
        plan.reason = f"invalid config: {e}"
        return plan
    plan.facts = regime_facts(plan.config, plan.table)
    plan.constraints = [c.value(plan.facts) for c in spec.constraints]
    plan.reason = infeasible_reason(list(spec.constraints), plan.constraints, plan.facts)
    return plan


def size_shares(user_attrs: dict[str, Any]) -> dict[int, float]:
    """``{size: p}`` a trial trains with, read back from what :meth:`TrialPlan.user_attrs` recorded."""
    return dict(zip(user_attrs.get("sizes") or [], user_attrs.get("probs") or [], strict=False))


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
