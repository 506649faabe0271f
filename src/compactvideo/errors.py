"""The exception (and warning) every user-facing problem derives from, so the command line can report it
cleanly."""

from __future__ import annotations

from typing import Any


class CompactVideoError(Exception):
    """A problem with the user's input (a file, a checkpoint, an option), stated precisely."""


class CompactVideoWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints it on one line)."""


class ConfigError(CompactVideoError, ValueError):
    """A configuration that cannot be built. ``key`` is the path to the offending value when known
    (``config.embeddings[0].fc.factors``), ``reason`` what is wrong with it."""

    def __init__(self, reason: str, key: str | None = None) -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.reason, self.key = reason, key

    def under(self, prefix: str) -> ConfigError:
        """The same error located inside ``prefix`` (the path of the object that holds the key)."""
        return ConfigError(self.reason, f"{prefix}.{self.key}" if self.key else prefix)


class OptionError(CompactVideoError, ValueError):
    """An option outside its range. ``name`` is the Python argument; the command line's flag is the same
    name with dashes (``log_every`` is ``--log-every``), which :meth:`flag_message` says instead."""

    def __init__(self, name: str, expected: str, value: Any) -> None:
        self.name, self.expected, self.value = name, expected, value
        super().__init__(f"{name} must be {expected}, got {value!r}")

    def flag_message(self) -> str:
        return f"--{self.name.replace('_', '-')} must be {self.expected}, got {self.value!r}"


def check_at_least(name: str, value: float | None, minimum: float) -> None:
    """Raise :class:`OptionError` unless ``value`` is None or at least ``minimum``."""
    if value is not None and value < minimum:
        raise OptionError(name, f"at least {minimum}", value)


def check_positive(name: str, value: float | None) -> None:
    """Raise :class:`OptionError` unless ``value`` is None or greater than 0."""
    if value is not None and not value > 0:
        raise OptionError(name, "greater than 0", value)
