"""One readable line per trial while a search runs (instead of Tune's status tables and framework logs).

::

    trial 0001 start  D+     p 16:.20 24:.30 32:.30 40:.20  lr 0.05 smoothing_alpha 0.9
    trial 0001 done   D+     band_16_48 0.8123  top1_cal_32 0.9531  val_top1 0.95  steps 1500  212 s

Sizes are shown as ``p_<S>`` shares (the distribution a trial trains with), not Optuna's raw ``u_<S>`` draws.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from ray.tune import Callback

from mixsize_ray.tune.simplex import simplex_probs
from mixsize_ray.tune.spec import SearchSpec


def trial_params_text(spec: SearchSpec, config: dict[str, Any]) -> tuple[str, str]:
    """``(mode, "p 16:.20 ... lr 0.05 ...")`` of a trial's Tune config (Optuna parameters).

    Example:
        >>> from mixsize_ray.tune.spec import load_space
        >>> spec = load_space("search_spaces/quickstart.yaml")
        >>> trial_params_text(spec, {"regime.mode": "fixed", "optim.lr": 0.05})[0]
        'fixed'
    """
    mode = config.get("regime.mode", spec.dim("regime.mode").value)
    parts = []
    if mode == "fixed":
        parts.append(f"p {spec.base[0]}:1")
    elif all(f"u_{s}" in config for s in spec.simplex.sizes):
        sizes, probs = simplex_probs(spec.simplex.sizes, [config[f"u_{s}"] for s in spec.simplex.sizes],
                                     spec.simplex.floor, spec.simplex.allow_drop)
        parts.append("p " + " ".join(f"{s}:{p:.2f}".replace(":0.", ":.") for s, p in zip(sizes, probs, strict=True)))
    for d in spec.dims:
        if d.searched and d.key != "regime.mode" and d.name in config:
            v = config[d.name]
            parts.append(f"{d.key.split('.')[-1]} {v:.3g}" if isinstance(v, float) else f"{d.key.split('.')[-1]} {v}")
    return str(mode), "  ".join(parts)


class TrialLines(Callback):
    """Tune callback: prints a line to stdout when a trial starts, finishes or fails.

    Holds only picklable state (Tune saves callbacks with the experiment): the stream is looked up per line.
    """

    def __init__(self, spec: SearchSpec):
        self.spec = spec
        self._t0: dict[str, float] = {}

    def _say(self, text: str) -> None:
        print(text, file=sys.stdout, flush=True)

    def _name(self, trial: Any) -> str:
        return f"trial {int(trial.config.get('trial_number', -1)):04d}"

    def _params(self, config: dict[str, Any]) -> dict[str, Any]:
        """The trial's parameters as :func:`trial_params_text` reads them."""
        return config

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._t0[trial.trial_id] = time.monotonic()
        mode, text = trial_params_text(self.spec, self._params(trial.config))
        self._say(f"{self._name(trial)} start  {mode:<6} {text}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        r = trial.last_result or {}
        mode, _ = trial_params_text(self.spec, self._params(trial.config))
        secs = time.monotonic() - self._t0.get(trial.trial_id, time.monotonic())
        if r.get("infeasible"):
            self._say(f"{self._name(trial)} skip   {mode:<6} infeasible: {r.get('infeasible_reason', '')}")
            return
        objs = "  ".join(f"{o.name} {r[o.key]:.4f}" for o in self.spec.objectives if o.key in r)
        extra = "  ".join(f"{k} {r[k]:.4g}" for k in ("val_top1", "step") if isinstance(r.get(k), int | float))
        self._say(f"{self._name(trial)} done   {mode:<6} {objs}  {extra}  {secs:.0f} s".replace(" step ", " steps "))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A failed trial Tune restarts (``search.max_failures``): its Train run resumes from its checkpoint."""
        self._say(f"{self._name(trial)} retry  after a failure ({_error_line(trial)}); resuming from its "
                  f"last checkpoint ({int(getattr(trial, 'num_failures', 0))} of at most "
                  f"{self.spec.search.max_failures} retries)")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        r = trial.last_result or {}
        reason = r.get("fail_reason") or "failed (see the trial's folder for its log)"
        self._say(f"{self._name(trial)} failed {reason}")


class SegmentLines(TrialLines):
    """PBT (``search.scheduler: pbt``): also one line per trial and segment, with the p, alpha and LR it
    trained that segment with (they change when PBT exploits and explores) and its validation top-1::

        trial 0001 epoch 2  B+     p 16:.31 24:.22 32:.27 40:.20  lr 0.0412  smoothing_alpha 0.87  val_top1 0.4531
    """

    def _params(self, config: dict[str, Any]) -> dict[str, Any]:
        from mixsize_ray.tune.perturb import member_params

        if "probs" not in config:
            return config
        return {**member_params(self.spec, config), "trial_number": config.get("trial_number", -1)}

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        from mixsize_ray.tune.pbt_trainable import CLOCK

        if result.get("final") == 1 or CLOCK not in result:
            return  # the last one gets its "done" line
        mode, text = trial_params_text(self.spec, self._params(trial.config))
        val = result.get("val_top1")
        tail = f"  val_top1 {val:.4f}" if isinstance(val, int | float) else ""
        self._say(f"{self._name(trial)} epoch {int(result[CLOCK])}  {mode:<6} {text}{tail}")


def _error_line(trial: Any) -> str:
    """The last line of the trial's error as Tune recorded it (e.g. a lost node's ActorDiedError), or a
    generic reason when Tune kept none."""
    path = getattr(trial, "error_file", None)
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
        if lines:
            return lines[-1][:200]
    except (OSError, TypeError):
        pass
    return "its process or node was lost"
