"""One-line user errors: the field, what is allowed, what was given.

The CLI turns :class:`ConfigError` into a single line on stderr and exit code 2, before anything launches.
"""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """Invalid user input. ``str(err)`` is one line: ``field: expected ALLOWED, got GIVEN``.

    Example:
        >>> raise ConfigError("regime.probs", "values >= 0 summing to 1", [0.5, 0.6])
        Traceback (most recent call last):
        ...
        mixsize_ray.errors.ConfigError: regime.probs: expected values >= 0 summing to 1, got [0.5, 0.6]
    """

    def __init__(self, field: str, allowed: str, given: Any, hint: str | None = None):
        self.field = field
        self.allowed = allowed
        self.given = given
        msg = f"{field}: expected {allowed}, got {given!r}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg.replace("\n", " "))


class RunFailed(RuntimeError):
    """A run that started and then failed (a worker died past ``train.max_failures``, the loss diverged).
    ``str(err)`` is one line: the reason, then what to do; ``reason`` alone is what a search records.

    Example:
        >>> str(RunFailed("diverged: non-finite loss at step 7 (size 16)", "lower optim.lr"))
        'diverged: non-finite loss at step 7 (size 16) (lower optim.lr)'
    """

    def __init__(self, reason: str, hint: str | None = None):
        self.reason = reason
        super().__init__(reason + (f" ({hint})" if hint else ""))


def one_line(err: BaseException | str, limit: int = 160, last: bool = False) -> str:
    """A hint from an exception (or text): its first (``last``: last) non-empty line, shortened at a word
    boundary to at most ``limit`` characters (never cut mid-word); the exception's type when it has no text.

    Example:
        >>> one_line(ConnectionError("Max retries exceeded with url: /api/2.0/mlflow/experiments/search"), 40)
        'Max retries exceeded with url: ...'
        >>> one_line(TimeoutError()), one_line("a\\n\\nlast line", last=True)
        ('TimeoutError', 'last line')
    """
    import textwrap

    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    if not lines:
        return type(err).__name__ if isinstance(err, BaseException) else ""
    return textwrap.shorten(lines[-1] if last else lines[0], width=limit, placeholder=" ...")
