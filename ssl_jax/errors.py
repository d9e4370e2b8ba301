"""Errors that map to the documented exit codes (DESIGN.md)."""

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_DATA = 3
EXIT_DIVERGED = 4  # NaN/Inf loss or gradient; the last good checkpoint is kept
EXIT_PREEMPTED = 75


class ConfigError(ValueError):
  """Bad config or usage: exit code 2."""


class DataError(RuntimeError):
  """Missing or empty dataset: exit code 3. The message says how to prepare it."""
