"""Entry point: python -m ssl_jax.main --config configs/NAME.py --workdir DIR [--config.F=V ...]

Exit codes: 0 done, 2 bad config or usage (also a batch too large for device memory),
3 data problem, 4 diverged (NaN/Inf), 74 the workdir's disk is full or read-only,
75 preempted after a checkpoint, 76 stalled (watchdog.py).
"""
import sys

from absl import flags
from ml_collections import config_flags

from ssl_jax import bootstrap, config_check, storage
from ssl_jax.errors import EXIT_CONFIG, EXIT_OK

_CONFIG = config_flags.DEFINE_config_file("config", None, "Python config file (get_config()).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and run.json.")
_ALLOW_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False, "Resume a workdir whose recorded config differs.")
_ALLOW_DATA_CHANGE = flags.DEFINE_bool(
    "allow_data_change", False, "Resume from a checkpoint trained on other data (the "
    "dataset's files or splits changed since).")
_WATCHDOG = flags.DEFINE_float(
    "watchdog_secs", 1800, "After this long without a finished step, evaluation batch or save, "
    "dump every thread's stack and exit 76 so a scheduler requeues the job (0: never).",
    lower_bound=0)
_GRACE = flags.DEFINE_float(
    "preempt_grace_secs", 90, "After SIGTERM/SIGINT a blocked process exits 75 within this "
    "long, keeping the last completed checkpoint.", lower_bound=1)

USAGE = ("Usage: python -m ssl_jax.main --config configs/NAME.py --workdir DIR "
         "[--config.FIELD=VALUE ...]")


def run_command(argv, command) -> int:
  """Shared by main and sweep: checks flags, loads the config, maps errors to exit codes.

  command(config, workdir, overrides) -> exit code.
  """
  if len(argv) > 1:
    print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
    return EXIT_CONFIG
  if _CONFIG.value is None or not _WORKDIR.value:
    print("error: --config and --workdir are required.", file=sys.stderr)
    return EXIT_CONFIG
  try:
    config = _CONFIG.value
    config.keys()  # a config file that failed to load raises here
  except (OSError, SyntaxError, AttributeError) as e:
    print(f"error: could not load --config: {e}", file=sys.stderr)
    return EXIT_CONFIG
  overrides = dict(config_flags.get_override_values(flags.FLAGS["config"]))
  workdir = None
  try:
    workdir = storage.resolve("--workdir", _WORKDIR.value)  # a local path or a gs:// URL
    # Everything that needs neither JAX nor data, before either is touched.
    config_check.resolve_paths(config)
    config_check.check(config)
    config_check.check_workdir(workdir)
    config_check.check_data_dir(config)
    bootstrap.join_distributed()
    from ssl_jax import train
    train.validate(config)  # needs the device count
    return command(config, workdir, overrides)
  except Exception as e:
    return bootstrap.exit_code(
        e, workdir=workdir, batch=f"batch_size={config.batch_size}",
        fit_advice=f"lower batch_size or raise grad_accum (now {config.grad_accum})")


def train_with_flags(config, workdir: str, overrides: dict) -> int:
  """The train loop with main's own flags: resume checks, watchdog, grace period."""
  from ssl_jax import train
  train.train(config, workdir, overrides, allow_config_change=_ALLOW_CHANGE.value,
             allow_data_change=_ALLOW_DATA_CHANGE.value, watchdog_secs=_WATCHDOG.value,
             grace_secs=_GRACE.value)
  return EXIT_OK


def main(argv):
  return run_command(argv, train_with_flags)


if __name__ == "__main__":
  bootstrap.start("ssl_jax.main", main, USAGE)
