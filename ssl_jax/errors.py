"""Errors that map to the documented exit codes (DESIGN.md, README "Exit codes")."""

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_DATA = 3
EXIT_DIVERGED = 4  # NaN/Inf loss or gradient; the last good checkpoint is kept
EXIT_STORAGE = 74  # the workdir's storage failed (disk full, read-only); checkpoints intact
EXIT_PREEMPTED = 75
EXIT_STALLED = 76  # the watchdog saw no progress for too long: stacks dumped; requeue


class ConfigError(ValueError):
  """Bad config or usage: exit code 2."""


class DataError(RuntimeError):
  """Missing or empty dataset: exit code 3. The message says how to prepare it."""


class StorageError(OSError):
  """The workdir could not be written (disk full, read-only filesystem): exit code 74."""


class Diverged(RuntimeError):
  """A NaN/Inf loss or gradient: exit code 4. The last good checkpoint is kept."""


class Preempted(RuntimeError):
  """SIGTERM/SIGINT stopped training after a checkpoint of the current step: exit code 75."""
