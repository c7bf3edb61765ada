"""The error of a site file that cannot be used (no pydantic or YAML here: the CLI catches it at start-up)."""

from __future__ import annotations


class ConfigError(Exception):
    """A config file that cannot be used; ``str()`` is the user-facing message (one line per problem)."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))

    def __reduce__(self):  # crosses the process boundary of isolated loading
        return (ConfigError, (self.path, self.problems))
