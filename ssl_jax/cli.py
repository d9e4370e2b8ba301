"""What every command-line entry point shares: absl flag parsing that exits 2 on bad usage."""
import functools
import sys

from ssl_jax.errors import EXIT_CONFIG


def flags_parser(usage: str):
  """An absl `flags_parser` for app.run: a bad flag prints one paragraph and exits 2 (not 1)."""
  return functools.partial(_parse, usage=usage)


def _parse(argv, usage):
  from absl import flags
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f"error: {e}\n{usage}", file=sys.stderr)
    sys.exit(EXIT_CONFIG)
