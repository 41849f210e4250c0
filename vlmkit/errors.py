"""Exceptions that name what is wrong and what would be accepted."""
from __future__ import annotations


class VlmkitError(Exception):
    """Base class of every error vlmkit raises on purpose."""


class RegistryError(VlmkitError, KeyError):
    """An unknown or duplicate component name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(VlmkitError, ValueError):
    """A problem in a config, located by its dotted key path."""

    def __init__(self, path: str, message: str, problems: list["ConfigError"] | None = None):
        self.path = path
        self.message = message
        self.problems = problems or [self]
        super().__init__(f"{path}: {message}" if path else message)

    @classmethod
    def many(cls, problems: list["ConfigError"]) -> "ConfigError":
        lines = "\n".join(f"  - {p}" for p in problems)
        err = cls("", f"{len(problems)} problems in the config:\n{lines}", problems)
        return err


class DataError(VlmkitError, RuntimeError):
    """A sample or file that cannot be used, named together with the reason."""
