"""One searched config key: a fixed value, a categorical choice, or a float/int range.

YAML forms (the range's type, float or int, is the config field's own type):

* a scalar (``0.1``, ``"sqrt"``, ``null``): fixed, nothing is searched;
* a list (``[none, sqrt]``): categorical over its entries (one entry = fixed);
* a mapping ``{low, high, log: false, step: null}``: a range, ``low < high``; ``log`` needs ``low > 0``.

Every error names the dimension by its path in the YAML (``space.lr``, ``space.params.optim.weight_decay``).

Example:
    >>> import optuna
    >>> d = parse_dimension("space.lr", "optim.lr", {"low": 0.01, "high": 1.0, "log": True})
    >>> d.kind, d.candidates(), d.field
    ('float', [0.01, 1.0], 'space.lr')
    >>> 0.01 <= d.suggest(optuna.create_study().ask()) <= 1.0
    True
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Any

from mixsize_ray.config import field_type
from mixsize_ray.errors import ConfigError

RANGE_KEYS = ("low", "high", "log", "step")


@dataclass(frozen=True)
class Dimension:
    """A searched (or fixed) config key. ``name`` is the Optuna parameter name, ``key`` the config key,
    ``field`` where the search-space YAML sets it (``space.lr``, ``space.params.train.seed``)."""

    name: str
    key: str
    kind: str  # "fixed" | "categorical" | "float" | "int"
    value: Any = None
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    field: str = ""

    @property
    def searched(self) -> bool:
        return self.kind != "fixed"

    def candidates(self) -> list[Any]:
        """Values that bound the dimension (checked against the config up front)."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "categorical":
            return list(self.choices)
        return [self.low, self.high]

    def suggest(self, trial: Any) -> Any:
        """Draw this dimension's value on an Optuna trial (define-by-run)."""
        if self.kind == "fixed":
            return self.value
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1),
                                     log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)


def at_field(err: ConfigError, field: str, note: str | None = None) -> ConfigError:
    """``err`` re-addressed to ``field`` (its path in the search-space YAML), keeping what it says.

    Example:
        >>> str(at_field(ConfigError("optim.lr", "> 0", -1.0), "space.lr", note="optim.lr of the training config"))
        'space.lr: expected > 0, got -1.0 (optim.lr of the training config)'
    """
    text = str(err)
    tail = text[len(err.field) + 2:] if text.startswith(f"{err.field}: ") else text
    out = ConfigError(field, err.allowed, err.given)
    out.args = (f"{field}: {tail}" + (f" ({note})" if note else ""),)
    return out


def parse_dimension(field: str, key: str, raw: Any, name: str | None = None) -> Dimension:
    """Parse one YAML dimension for config key ``key``; ``field`` names it in errors (e.g. ``space.lr``)."""
    name = name or key
    try:
        tp = field_type(key)
    except ConfigError as e:
        raise at_field(e, field) from None
    if isinstance(raw, list):
        if not raw:
            raise ConfigError(field, "a non-empty list of choices, a {low, high} range or a value", raw)
        if any(isinstance(v, dict | list) for v in raw) and tp is not list and typing.get_origin(tp) is not list:
            raise ConfigError(field, "choices that are plain values", raw)
        if len({repr(v) for v in raw}) != len(raw):
            raise ConfigError(field, "distinct choices", raw)
        if len(raw) == 1:
            return Dimension(name, key, "fixed", value=raw[0], field=field)
        return Dimension(name, key, "categorical", choices=tuple(raw), field=field)
    if not isinstance(raw, dict):
        return Dimension(name, key, "fixed", value=raw, field=field)
    unknown = [k for k in raw if k not in RANGE_KEYS]
    if unknown:
        raise ConfigError(f"{field}.{unknown[0]}", f"one of the keys {list(RANGE_KEYS)}", unknown[0],
                          hint="unknown key")
    if "low" not in raw or "high" not in raw:
        raise ConfigError(field, "a range with both low and high", raw)
    if tp not in (int, float):
        raise ConfigError(field, f"a list of choices ({key} is not numeric)", raw)
    low, high, log, step = raw["low"], raw["high"], raw.get("log", False), raw.get("step")
    for part, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ConfigError(f"{field}.{part}", "a finite number", v)
        if tp is int and int(v) != v:
            raise ConfigError(f"{field}.{part}", f"an integer ({key} is an integer)", v)
    if not low < high:
        raise ConfigError(field, "low < high", {"low": low, "high": high})
    if not isinstance(log, bool):
        raise ConfigError(f"{field}.log", "true or false", log)
    if log and low <= 0:
        raise ConfigError(f"{field}.low", "> 0 for a log range", low)
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, int | float) or not step > 0 or step > high - low:
            raise ConfigError(f"{field}.step", f"null or a number in (0, {high - low}]", step)
        if log:
            raise ConfigError(f"{field}.step", "null for a log range", step)
        if tp is int and int(step) != step:
            raise ConfigError(f"{field}.step", "an integer", step)
    kind = "int" if tp is int else "float"
    return Dimension(name, key, kind, low=low, high=high, log=log, step=step, field=field)
