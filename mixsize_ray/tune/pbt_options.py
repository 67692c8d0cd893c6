"""``search.scheduler: pbt`` and its ``search.pbt`` block -> :class:`PBTOptions`, validated up front.

Population Based Training trains ``search.num_samples`` trials at once (the population) and, every
``perturbation_interval`` epochs, lets each trial in the bottom ``quantile_fraction`` (ranked by ``metric``)
copy the checkpoint of one in the top fraction (exploit) and perturb the mutated keys (explore: the size
distribution p on the simplex, smoothing alpha, LR; see :mod:`mixsize_ray.tune.perturb`).

Example:
    >>> o = parse_pbt({"perturbation_interval": 2}, seed=7)
    >>> o.perturbation_interval, o.quantile_fraction, o.mutate, o.seed
    (2, 0.25, ('probs', 'smoothing_alpha', 'lr'), 7)
    >>> parse_pbt({"quantile_fraction": 0.9}, seed=0)
    Traceback (most recent call last):
    ...
    mixsize_ray.errors.ConfigError: search.pbt.quantile_fraction: expected a fraction in (0, 0.5], got 0.9
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mixsize_ray.errors import ConfigError

SCHEDULERS = ("optuna", "pbt")  # optuna: the static search (default); pbt: Population Based Training
MUTABLE = ("probs", "smoothing_alpha", "lr")  # what a PBT perturbation may change
PBT_DEFAULTS: dict[str, Any] = {
    "perturbation_interval": 1, "quantile_fraction": 0.25, "resample_probability": 0.25, "probs_sigma": 0.5,
    "factors": [0.8, 1.25], "metric": "val_top1", "mutate": list(MUTABLE), "seed": None,
}
METRICS = ("val_top1", "train_top1", "loss")


@dataclass(frozen=True)
class PBTOptions:
    """perturbation_interval: epochs between perturbations. quantile_fraction: share of the population that
    exploits (bottom) and is copied (top). resample_probability: chance a mutated key is drawn afresh from
    the space instead of perturbed. probs_sigma: log-normal strength of the multiplicative p perturbation.
    factors: multipliers for alpha and LR. metric: the per-epoch report key that ranks trials (maximised,
    ``loss`` minimised). mutate: keys perturbed. seed: the explorer's and the initial population's seed."""

    perturbation_interval: int = 1
    quantile_fraction: float = 0.25
    resample_probability: float = 0.25
    probs_sigma: float = 0.5
    factors: tuple[float, ...] = (0.8, 1.25)
    metric: str = "val_top1"
    mutate: tuple[str, ...] = MUTABLE
    seed: int = 0

    @property
    def mode(self) -> str:
        return "min" if self.metric == "loss" else "max"


def _number(field: str, v: Any, low: float, high: float, low_open: bool = False) -> float:
    ok = not isinstance(v, bool) and isinstance(v, int | float) and (low < v if low_open else low <= v) and v <= high
    if not ok:
        raise ConfigError(field, f"a fraction in {'(' if low_open else '['}{low:g}, {high:g}]", v)
    return float(v)


def parse_pbt(raw: Any, seed: int) -> PBTOptions:
    """Validate a ``search.pbt`` mapping (None: all defaults); ``seed``: ``search.seed``, the default."""
    if raw is None or raw is True:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("search.pbt", "a mapping", raw)
    for k in raw:
        if k not in PBT_DEFAULTS:
            raise ConfigError(f"search.pbt.{k}", f"one of the keys {list(PBT_DEFAULTS)}", k, hint="unknown key")
    r = {**PBT_DEFAULTS, **raw}
    n = r["perturbation_interval"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError("search.pbt.perturbation_interval", "an integer >= 1 (epochs)", n)
    q = _number("search.pbt.quantile_fraction", r["quantile_fraction"], 0, 0.5, low_open=True)
    rp = _number("search.pbt.resample_probability", r["resample_probability"], 0, 1)
    sigma = r["probs_sigma"]
    if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not 0 < sigma <= 5:
        raise ConfigError("search.pbt.probs_sigma", "a number in (0, 5]", sigma)
    f = r["factors"]
    if (not isinstance(f, list) or not f
            or any(isinstance(x, bool) or not isinstance(x, int | float) or x <= 0 for x in f)):
        raise ConfigError("search.pbt.factors", "a non-empty list of multipliers > 0", f)
    if r["metric"] not in METRICS:
        raise ConfigError("search.pbt.metric", f"one of {list(METRICS)}", r["metric"])
    m = r["mutate"]
    if not isinstance(m, list) or not m or any(x not in MUTABLE for x in m) or len(set(m)) != len(m):
        raise ConfigError("search.pbt.mutate", f"a non-empty list of distinct keys from {list(MUTABLE)}", m)
    s = seed if r["seed"] is None else r["seed"]
    if isinstance(s, bool) or not isinstance(s, int) or s < 0:
        raise ConfigError("search.pbt.seed", "an integer >= 0", s)
    return PBTOptions(n, q, rp, float(sigma), tuple(float(x) for x in f), r["metric"], tuple(m), s)
