"""The size distribution of a trial: Optuna's uniform draws ``u_<S>`` <-> the shares ``p_<S>`` it trains with.

One ``u_S`` in (0, 1] per candidate size; ``e_S = -log u_S`` are exponential draws, so ``e_S / sum e`` is a
flat Dirichlet over the simplex, and

* ``allow_drop: false``: ``p_S = floor + (1 - K*floor) e_S / sum e`` (every size keeps at least ``floor``);
* ``allow_drop: true``: ``p_S = e_S / sum e``; sizes under ``floor`` are dropped and the rest renormalised.

Pure arithmetic; :func:`probs_to_u` inverts it (to enqueue a known regime, e.g. a paper table).

Example:
    >>> sizes, probs = simplex_probs([16, 32], [0.5, 0.25], floor=0.1, allow_drop=False)
    >>> sizes, [round(p, 4) for p in probs]
    ([16, 32], [0.3667, 0.6333])
    >>> u = probs_to_u((16, 32), [0.3667, 0.6333], floor=0.1, allow_drop=False)
    >>> [round(p, 4) for p in simplex_probs([16, 32], [u["u_16"], u["u_32"]], 0.1, False)[1]]
    [0.3667, 0.6333]
"""

from __future__ import annotations

import math

from mixsize_ray.errors import ConfigError

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
    """The ``u_<S>`` parameters that reproduce ``probs`` (errors name ``search.enqueue.probs``)."""
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
