"""Entry point: python -m ssl_jax.main --config configs/NAME.py --workdir DIR [--config.F=V ...]

Exit codes: 0 done, 2 bad config or usage (also a batch too large for device memory),
3 data problem, 4 diverged (NaN/Inf), 74 the workdir's disk is full or read-only,
75 preempted after a checkpoint.
"""
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from ssl_jax import config_check, enable_compilation_cache, failures, hugepages, storage
from ssl_jax.errors import (EXIT_CONFIG, EXIT_DATA, EXIT_DIVERGED, EXIT_STORAGE, ConfigError,
                            DataError)

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
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for multi-process runs outside "
    "TPU pods and SLURM (where it is detected automatically).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")


def parse_flags(argv):
  """absl parsing, but usage errors exit 2 with one clear paragraph instead of 1."""
  spec = config_check.config_spec(argv)
  problem = spec and config_check.config_file_error(spec)
  if problem:  # a broken config file: name it and its error, without a traceback
    print(f"error: {problem}", file=sys.stderr)
    sys.exit(EXIT_CONFIG)
  try:
    return flags.FLAGS(argv)
  except (flags.Error, KeyError, AttributeError, TypeError, ValueError) as e:
    # ml_collections reports an unknown field as a KeyError with a "did you mean" hint.
    # (raised bare, or wrapped in an AttributeError one level down).
    if isinstance(e, AttributeError) and e.args and isinstance(e.args[0], KeyError):
      e = e.args[0]
    message = e
    if isinstance(e, KeyError) and e.args:
      message = f"unknown config field {e.args[0]}"
      if "did you mean" not in message.lower():
        message += _misplaced_hint(argv, e.args[0].strip("'"))
    print(f"error: {message}\nUsage: python -m ssl_jax.main --config configs/NAME.py --workdir DIR "
          "[--config.FIELD=VALUE ...]", file=sys.stderr)
    sys.exit(EXIT_CONFIG)


def _misplaced_hint(argv, name) -> str:
  """'; did you mean --config.optim.warmup_steps?' for a field named at the wrong level."""
  import importlib.util
  path = config_check.config_spec(argv)
  try:
    spec = importlib.util.spec_from_file_location("_cfg", path.split(":")[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
  except Exception:  # the hint is a nicety; the error itself is reported either way
    return ""

  def fields(node, prefix=""):
    for key, value in node.items():
      yield f"{prefix}{key}"
      if hasattr(value, "items"):
        yield from fields(value, f"{prefix}{key}.")
  matches = [f for f in fields(config) if f.rsplit(".", 1)[-1] == name]
  return f"; did you mean --config.{matches[0]}?" if matches else ""


def init_distributed():
  """jax.distributed.initialize from flags, or auto-detected on TPU pods and SLURM."""
  import jax
  if _COORDINATOR.value:
    if _NUM_PROCESSES.value is None or _PROCESS_ID.value is None:
      raise ConfigError("--coordinator_address needs --num_processes and --process_id.")
    if not 0 <= _PROCESS_ID.value < _NUM_PROCESSES.value:
      raise ConfigError(f"--process_id must be in [0, --num_processes={_NUM_PROCESSES.value}); "
                        f"got {_PROCESS_ID.value}.")
    jax.distributed.initialize(_COORDINATOR.value, num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value)
  elif (os.environ.get("SSL_JAX_DISTRIBUTED") == "1" or int(os.environ.get("SLURM_NTASKS", "1")) > 1
        or "TPU_WORKER_HOSTNAMES" in os.environ):
    jax.distributed.initialize()


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
  enable_compilation_cache()
  from absl import logging
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  from ssl_jax import train
  try:
    config = _CONFIG.value
    config.keys()  # a config file that failed to load raises here
  except (OSError, SyntaxError, AttributeError) as e:
    print(f"error: could not load --config: {e}", file=sys.stderr)
    return EXIT_CONFIG
  overrides = dict(config_flags.get_override_values(flags.FLAGS["config"]))
  try:
    workdir = storage.resolve("--workdir", _WORKDIR.value)  # a local path or a gs:// URL
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return EXIT_CONFIG
  try:
    # Everything that needs neither JAX nor data, before either is touched.
    config_check.resolve_paths(config)
    config_check.check(config)
    try:
      config_check.check_workdir(workdir)
      config_check.check_data_dir(config)
    except ConfigError as e:  # a usage problem, not the config's
      print(f"error: {e}", file=sys.stderr)
      return EXIT_CONFIG
    failures.quiet_storage_noise()
    init_distributed()
    train.validate(config)  # needs the device count
    return command(config, workdir, overrides)
  except ConfigError as e:
    print(f"error: bad config: {e}", file=sys.stderr)
    return EXIT_CONFIG
  except DataError as e:
    print(f"error: data: {e}", file=sys.stderr)
    return EXIT_DATA
  except train.Diverged as e:
    print(f"error: training diverged: {e}", file=sys.stderr)
    return EXIT_DIVERGED
  except Exception as e:  # the two failures below come from libraries, wrapped in theirs
    if failures.storage_failure(e):
      print(f"error: storage: {failures.storage_message(e, workdir)}", file=sys.stderr)
      return EXIT_STORAGE
    oom = failures.out_of_memory(e)
    if oom is None:
      raise
    print(f"error: batch_size={config.batch_size} does not fit in memory on "
          f"{failures.device_name()}; lower batch_size or raise grad_accum (now "
          f"{config.grad_accum}). XLA said: {failures.xla_detail(oom)}", file=sys.stderr)
    return EXIT_CONFIG


def main(argv):
  from ssl_jax import train
  return run_command(argv, lambda config, workdir, overrides: train.train(
      config, workdir, overrides, allow_config_change=_ALLOW_CHANGE.value,
      allow_data_change=_ALLOW_DATA_CHANGE.value,
      watchdog_secs=_WATCHDOG.value, grace_secs=_GRACE.value))


def run():
  hugepages.reexec_if_wanted()
  app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)


if __name__ == "__main__":
  run()
