"""PBT's explore step for MixSize: perturb the size distribution p on the simplex, smoothing alpha and LR,
and keep only points whose regime still solves under the budget (and meets the space's constraints).

A PBT trial's Tune config (a *member*) is ``{"trial_number": n, "probs": [p_S for S in space.sizes],
<searched key>: value, ...}`` (``optim.lr``, ``optim.smoothing_alpha``, ``regime.mode``, ``space.params``
keys). :func:`member_params` turns it into the Optuna-style parameters :func:`~mixsize_ray.tune.space.build_trial`
reads, so a PBT trial trains exactly what a static trial with the same p would.

p moves by a multiplicative log-normal step (``p_i * exp(sigma * z_i)``, renormalised, then raised to the
floor), or, with ``resample_probability``, by a fresh flat-Dirichlet draw; alpha and LR by a factor (or a
fresh draw), clipped to their ranges. Everything is seeded: the same seed gives the same sequence.

Example:
    >>> import random
    >>> p = perturb_probs([0.25, 0.25, 0.25, 0.25], random.Random(0), sigma=0.5, floor=0.05)
    >>> round(sum(p), 12), min(p) >= 0.05, p != [0.25] * 4
    (1.0, True, True)
    >>> p == perturb_probs([0.25, 0.25, 0.25, 0.25], random.Random(0), sigma=0.5, floor=0.05)
    True
"""

from __future__ import annotations

import math
import random
from typing import Any

from mixsize_ray.tune.dims import Dimension
from mixsize_ray.tune.pbt_options import PBTOptions
from mixsize_ray.tune.simplex import probs_to_u, simplex_probs
from mixsize_ray.tune.spec import SearchSpec

TRIES = 20  # perturbations tried before an explore step keeps the donor's p
MUTATED_KEYS = {"smoothing_alpha": "optim.smoothing_alpha", "lr": "optim.lr"}


def project_floor(q: list[float], floor: float) -> list[float]:
    """The nearest-in-ratio point of the simplex with every p_i >= ``floor``: normalise, raise the shares
    under the floor to it, rescale the others to the rest (repeat until none is under).

    Example:
        >>> [round(x, 3) for x in project_floor([0.0, 1.0, 3.0], 0.1)]
        [0.1, 0.225, 0.675]
    """
    k = len(q)
    if not 0 <= floor * k <= 1:
        raise ValueError(f"project_floor: floor must be in [0, 1/{k}], got {floor}")
    fixed: set[int] = set()
    p = list(q)
    while True:
        free = [i for i in range(k) if i not in fixed]
        total = sum(max(p[i], 0.0) for i in free)
        rest = 1.0 - floor * len(fixed)
        for i in free:
            p[i] = rest * max(p[i], 0.0) / total if total > 0 else rest / len(free)
        for i in fixed:
            p[i] = floor
        low = [i for i in free if p[i] < floor - 1e-15]
        if not low:
            return p
        fixed.update(low)


def perturb_probs(probs: list[float], rng: random.Random, sigma: float, floor: float,
                  resample_probability: float = 0.0) -> list[float]:
    """p perturbed on the simplex: ``p_i * exp(sigma * N(0, 1))`` renormalised and raised to ``floor``, or
    (with ``resample_probability``) a fresh flat-Dirichlet draw mapped as the static search maps it."""
    k = len(probs)
    if rng.random() < resample_probability:
        u = [1.0 - rng.random() for _ in range(k)]  # in (0, 1]
        _, p = simplex_probs(list(range(k)), u, floor, allow_drop=False)
        return p
    return project_floor([x * math.exp(sigma * rng.gauss(0.0, 1.0)) for x in probs], floor)


def perturb_value(value: float, dim: Dimension, rng: random.Random, factors: tuple[float, ...],
                  resample_probability: float) -> float:
    """A float dimension's value times one of ``factors`` (or a fresh draw, log-uniform for a log range),
    clipped to [low, high].

    Example:
        >>> d = Dimension("lr", "optim.lr", "float", low=0.01, high=0.1, log=True)
        >>> perturb_value(0.09, d, random.Random(1), (1.25,), 0.0)
        0.1
    """
    lo, hi = float(dim.low), float(dim.high)
    if rng.random() < resample_probability:
        if dim.log:
            return math.exp(rng.uniform(math.log(lo), math.log(hi)))
        return rng.uniform(lo, hi)
    return min(hi, max(lo, value * rng.choice(factors)))


def member_params(spec: SearchSpec, member: dict[str, Any]) -> dict[str, Any]:
    """A PBT member's config -> the Optuna-style parameters of :func:`~mixsize_ray.tune.spec.trial_config`."""
    params = {k: v for k, v in member.items() if k not in ("trial_number", "probs")}
    params.update(probs_to_u(spec.simplex.sizes, list(member["probs"]), spec.simplex.floor, spec.simplex.allow_drop))
    return params


def infeasible(spec: SearchSpec, member: dict[str, Any]) -> str | None:
    """Why a member cannot train (its regime does not solve under the budget, a constraint is violated, an
    invalid config), or None."""
    from mixsize_ray.errors import ConfigError
    from mixsize_ray.tune.space import TrialContext, build_trial

    try:
        plan = build_trial(spec, TrialContext("check", "/tmp"), member_params(spec, member),
                           int(member.get("trial_number", 0)))
    except ConfigError as e:
        return str(e)
    return plan.reason


def float_dims(spec: SearchSpec, opts: PBTOptions) -> list[Dimension]:
    """The searched float dimensions PBT mutates (alpha and/or LR, as ``mutate`` names them)."""
    keys = {MUTATED_KEYS[m] for m in opts.mutate if m in MUTATED_KEYS}
    return [d for d in spec.dims if d.key in keys and d.searched and d.kind == "float"]


def _draw(spec: SearchSpec, rng: random.Random, number: int) -> dict[str, Any]:
    """A random member: flat-Dirichlet p (with the floor), a mixed mode, every searched key drawn."""
    member: dict[str, Any] = {"trial_number": number}
    _, member["probs"] = simplex_probs(list(spec.simplex.sizes), [1.0 - rng.random() for _ in spec.simplex.sizes],
                                       spec.simplex.floor, allow_drop=False)
    for d in spec.dims:
        if not d.searched:
            continue
        if d.key == "regime.mode":
            member[d.name] = rng.choice([m for m in spec.modes if m != "fixed"])
        elif d.kind == "float":
            member[d.name] = perturb_value(float(d.low), d, rng, (1.0,), 1.0)
        elif d.kind == "int":
            member[d.name] = rng.randint(int(d.low), int(d.high))
        else:
            member[d.name] = rng.choice(d.candidates())
    return member


def initial_population(spec: SearchSpec) -> list[dict[str, Any]]:
    """``search.num_samples`` feasible members, seeded by ``search.pbt.seed``: ``search.enqueue`` entries
    first (a ``fixed``-mode entry is skipped: it has no p to mutate), then random draws."""
    from mixsize_ray.tune.spec import default_params, enqueue_params, trial_config

    rng = random.Random(spec.search.pbt.seed)
    out: list[dict[str, Any]] = []
    for entry in spec.search.enqueue:
        params = {**default_params(spec), **enqueue_params(spec, entry)}
        if params.get("regime.mode") == "fixed" or len(out) >= spec.search.num_samples:
            continue
        member = {k: v for k, v in params.items() if not k.startswith("u_")}
        member["probs"] = trial_config(spec, params)["regime"]["probs"]
        member["trial_number"] = len(out)
        out.append(member)
    tries = 0
    while len(out) < spec.search.num_samples:
        member = _draw(spec, rng, len(out))
        tries += 1
        if infeasible(spec, member) is None or tries > 50 * spec.search.num_samples:
            out.append(member)
    return out


class Explorer:
    """PBT's ``custom_explore_fn``: ``explorer(member) -> perturbed member``, seeded, feasible only (after
    ``TRIES`` infeasible perturbations of p the donor's p is kept; alpha and LR move anyway).

    Example:
        >>> from mixsize_ray.tune.spec import load_space, parse_space
        >>> spec = load_space("search_spaces/quickstart.yaml")
        >>> raw = {**spec.raw, "search": {**spec.raw["search"], "scheduler": "pbt"}}
        >>> spec = parse_space(raw)
        >>> donor = initial_population(spec)[0]
        >>> new = Explorer(spec)(donor)
        >>> new["probs"] != donor["probs"], infeasible(spec, new) is None
        (True, True)
    """

    def __init__(self, spec: SearchSpec):
        self.spec, self.opts = spec, spec.search.pbt
        self.rng = random.Random(self.opts.seed + 1)

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        spec, o, rng = self.spec, self.opts, self.rng
        new = dict(config)
        for d in float_dims(spec, o):
            new[d.name] = perturb_value(float(config[d.name]), d, rng, o.factors, o.resample_probability)
        if "probs" in o.mutate:
            for _ in range(TRIES):
                candidate = {**new, "probs": perturb_probs(list(config["probs"]), rng, o.probs_sigma,
                                                           spec.simplex.floor, o.resample_probability)}
                if infeasible(spec, candidate) is None:
                    return candidate
        return new
