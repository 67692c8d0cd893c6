"""Which searched variables moved each objective (``importances.json``): one computation per objective, and
the reason written next to every importance that is zero or could not be computed.

The variables are the trials table's (``trials.csv``), not Optuna's raw draws:

* ``p_<S>``: the share of steps at size S a trial trained with (0 where it did not train at S). Optuna
  samples ``u_<S>`` draws (a flat Dirichlet through ``-log u``, :mod:`mixsize_ray.tune.simplex`) and none
  in the fixed control arm, so the draws say little; the shares are what a regime is.
* ``regime.mode`` and every other searched key, by its config key (``optim.lr``, ...).

Per objective, the feasible finished trials with a finite value of that objective are copied into an
in-memory study of their own (``optuna.trial.create_trial`` + ``Study.add_trial``), and Optuna's fANOVA
evaluator (seeded, so the same trials give the same numbers) rates the variables that vary across them.
A variable constant across the trials is 0 with that reason; too few trials or an objective with the same
value in every trial give a reason instead of numbers.

Example:
    >>> from types import SimpleNamespace as NS
    >>> spec = NS(objectives=[NS(name="top1_cal_32", mode="max")], dims=[], simplex=NS(sizes=(16, 32)))
    >>> trials = [NS(values=[0.5 + i / 10], params={}, distributions={},
    ...              user_attrs={"sizes": [16, 32], "probs": [0.5, 0.5]}) for i in range(5)]
    >>> importances(spec, trials)["top1_cal_32"]["importances"]["p_16"]
    {'importance': 0.0, 'reason': 'constant across the 5 trials (0.5)'}
    >>> importances(spec, trials[:2])["top1_cal_32"]["importances"]["p_32"]["reason"]
    'too few feasible finished trials with a value (2; needs >= 4)'
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from typing import Any

from mixsize_ray.errors import one_line
from mixsize_ray.tune.space import size_shares
from mixsize_ray.tune.spec import SearchSpec

MIN_TRIALS = 4  # fewer: every variable that differs "explains" the objective equally well
SEED = 0
DIGITS = 6  # importances are shares of 1; below 1e-6 they read as 0 (with the reason)
NOTE = ("fANOVA importances (Optuna, seed 0), one computation per objective over its feasible finished trials; "
        "sizes appear as the p_<S> shares the trials trained with (the trials table's columns), not as Optuna's "
        "u_<S> draws; an importance that is 0 or null carries its reason; rough with few trials")


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():  # experimental-feature and few-trials warnings on every call
            warnings.simplefilter("ignore")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def trial_variables(spec: SearchSpec, trials: list[Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(Optuna distribution of each variable, one ``{variable: value}`` per trial): ``p_<S>`` for every size a
    trial or the space names, then the searched keys every trial holds."""
    from optuna.distributions import FloatDistribution

    shares = [size_shares(t.user_attrs) for t in trials]
    sizes = sorted(set(spec.simplex.sizes).union(*shares))
    dists: dict[str, Any] = {f"p_{s}": FloatDistribution(0.0, 1.0) for s in sizes}
    for d in spec.dims:
        if d.searched and all(d.name in t.params for t in trials):
            dists[d.name] = trials[0].distributions[d.name] if trials else None
    keys = [k for k in dists if not k.startswith("p_")]
    rows = [{**{f"p_{s}": float(sh.get(s, 0.0)) for s in sizes}, **{k: t.params[k] for k in keys}}
            for t, sh in zip(trials, shares, strict=True)]
    return dists, rows


def _fanova(dists: dict[str, Any], rows: list[dict[str, Any]], values: list[float], names: list[str]) -> dict:
    import optuna

    study = optuna.create_study()  # fANOVA decomposes the variance: the direction does not matter
    for row, value in zip(rows, values, strict=True):
        study.add_trial(optuna.trial.create_trial(params=row, distributions=dists, value=value))
    return optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=SEED), params=names)


def objective_importances(dists: dict[str, Any], rows: list[dict[str, Any]],
                          values: list[float]) -> dict[str, Any]:
    """``{"trials": n, "importances": {variable: {"importance": x, "reason"?: why}}}`` for one objective,
    most important first; ``reason`` is there exactly when ``x`` is 0 or None."""
    n = len(values)

    def each(importance: float | None, reason: str) -> dict[str, Any]:
        return {v: {"importance": importance, "reason": reason} for v in dists}

    if n < MIN_TRIALS:
        return {"trials": n, "importances": each(None, f"too few feasible finished trials with a value "
                                                       f"({n}; needs >= {MIN_TRIALS})")}
    if max(values) == min(values):
        return {"trials": n, "importances": each(0.0, f"the objective is {values[0]:.6g} in all {n} trials: "
                                                      "nothing to explain")}
    out: dict[str, dict[str, Any]] = {}
    varying = []
    for v in dists:
        seen = {repr(r[v]) for r in rows}
        if len(seen) == 1:
            out[v] = {"importance": 0.0, "reason": f"constant across the {n} trials ({rows[0][v]!r})"}
        else:
            varying.append(v)
    if varying:
        try:
            with _quiet_optuna():
                scores = _fanova(dists, rows, values, varying)
        except Exception as e:  # noqa: BLE001 - the evaluator's own message is the reason
            msg = one_line(e, 200)
            scores = {v: None for v in varying}
            out.update({v: {"importance": None, "reason": f"could not be computed: {msg}"} for v in varying})
        for v in varying:
            x = scores.get(v)
            if x is None:
                continue
            out[v] = {"importance": round(float(x), DIGITS)}
            if out[v]["importance"] == 0.0:
                out[v]["reason"] = f"fANOVA attributes none of the objective's variance over the {n} trials to it"
    ranked = sorted(out.items(), key=lambda kv: -1.0 if kv[1]["importance"] is None else kv[1]["importance"],
                    reverse=True)
    return {"trials": n, "importances": dict(ranked)}


def importances(spec: SearchSpec, trials: list[Any]) -> dict[str, Any]:
    """``importances.json``: a note, then per objective name :func:`objective_importances` over the ``trials``
    (the feasible finished ones) that hold a finite value of that objective."""
    out: dict[str, Any] = {"note": NOTE}
    for i, o in enumerate(spec.objectives):
        keep = [t for t in trials if t.values is not None and len(t.values) > i and math.isfinite(t.values[i])]
        dists, rows = trial_variables(spec, keep)
        out[o.name] = objective_importances(dists, rows, [float(t.values[i]) for t in keep])
        if len(keep) < len(trials):
            out[o.name]["left_out"] = f"{len(trials) - len(keep)} trial(s) without a finite value of {o.name}"
    return out
