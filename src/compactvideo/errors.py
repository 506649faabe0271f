"""The exception (and warning) every user-facing problem derives from, so the command line can report it
cleanly."""

from __future__ import annotations


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
