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
