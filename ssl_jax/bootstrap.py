"""How every command-line entry point starts and ends, written once.

  if __name__ == "__main__":
    bootstrap.start("ssl_jax.NAME", main, USAGE)

  def main(argv):
    ... usage checks (exit 2) ...
    try:
      ... the work ...
    except Exception as e:
      return bootstrap.exit_code(e, workdir=...)  # one paragraph, the documented exit code

start re-executes with 2 MiB pages where COMMANDS says so, parses the flags (bad usage
exits 2), turns on the compilation cache, quiets INFO logs and storage noise, and calls
main. A distributed command calls join_distributed() once its own checks have passed. A
new command adds a row to COMMANDS.
"""
import dataclasses
import os
import sys

from ssl_jax import config_check, failures, hugepages
from ssl_jax.errors import (EXIT_CONFIG, EXIT_DATA, EXIT_DIVERGED, EXIT_PREEMPTED,
                            EXIT_STORAGE, ConfigError, DataError, Diverged, Preempted)


@dataclasses.dataclass(frozen=True)
class Command:
  # Re-exec with 2 MiB pages (hugepages.py): worth it for minutes of XLA:CPU work; the
  # short tools start sooner without the second exec.
  hugepages: bool
  # Takes part in multi-process runs: has the flags --coordinator_address, --num_processes
  # and --process_id, and calls join_distributed().
  distributed: bool


COMMANDS = {
    "ssl_jax.main": Command(hugepages=True, distributed=True),
    "ssl_jax.sweep": Command(hugepages=True, distributed=True),  # trains as fast as main
    # Feature extraction spreads over every process's devices (evaluate/transfer.py).
    "ssl_jax.evaluate": Command(hugepages=True, distributed=True),
    "ssl_jax.sample": Command(hugepages=False, distributed=False),
    "ssl_jax.augment_grid": Command(hugepages=False, distributed=False),
    "ssl_jax.export": Command(hugepages=False, distributed=False),
}


def start(name: str, main, usage: str):
  """Runs main(argv) -> exit code as the command `python -m name`, with absl flags."""
  from absl import app
  command = COMMANDS[name]
  if command.distributed:
    _define_distributed_flags()
  if command.hugepages:
    hugepages.reexec_if_wanted()
  app.run(lambda argv: sys.exit(_configure_and_run(main, argv)),
          flags_parser=lambda argv: _parse(argv, usage))


def _configure_and_run(main, argv) -> int:
  from absl import flags, logging

  from ssl_jax.models import layers
  layers.tune_xla_cpu()  # before anything starts JAX's backend
  _enable_compilation_cache()
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  failures.quiet_storage_noise()  # exit_code reports a failed write once
  return main(argv)


def _parse(argv, usage: str):
  """absl parsing, but a bad flag or config file exits 2 with one paragraph instead of 1."""
  from absl import flags
  spec = "config" in flags.FLAGS and config_check.config_spec(argv)
  problem = spec and config_check.config_file_error(spec)
  if problem:  # a broken config file: name it and its error, without a traceback
    print(f"error: {problem}", file=sys.stderr)
    sys.exit(EXIT_CONFIG)
  try:
    return flags.FLAGS(argv)
  except (flags.Error, KeyError, AttributeError, TypeError, ValueError) as e:
    # ml_collections reports a bad --config.FIELD as one of these; an unknown field as a
    # KeyError with a "did you mean" hint, raised bare or inside an AttributeError.
    if isinstance(e, AttributeError) and e.args and isinstance(e.args[0], KeyError):
      e = e.args[0]
    message = e
    if isinstance(e, KeyError) and e.args:
      message = f"unknown config field {e.args[0]}"
      if "did you mean" not in message.lower():
        message += _misplaced_hint(spec, e.args[0].strip("'"))
    print(f"error: {message}\n{usage}", file=sys.stderr)
    sys.exit(EXIT_CONFIG)


def _misplaced_hint(spec, name) -> str:
  """'; did you mean --config.optim.warmup_steps?' for a field named at the wrong level."""
  import importlib.util
  try:
    module_spec = importlib.util.spec_from_file_location("_cfg", spec.split(":")[0])
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
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


def _define_distributed_flags():
  from absl import flags
  flags.DEFINE_string(
      "coordinator_address", None, "host:port of process 0, for multi-process runs outside "
      "TPU pods and SLURM (where it is detected automatically).")
  flags.DEFINE_integer("num_processes", None, "Number of processes.")
  flags.DEFINE_integer("process_id", None, "This process's index.")


def join_distributed():
  """jax.distributed.initialize from --coordinator_address, --num_processes and
  --process_id, or detected on TPU pods and SLURM; for the commands COMMANDS marks
  distributed, after their own checks and before JAX touches a device."""
  import jax
  from absl import flags
  address, count, index = (flags.FLAGS.coordinator_address, flags.FLAGS.num_processes,
                           flags.FLAGS.process_id)
  if address:
    if count is None or index is None:
      raise ConfigError("--coordinator_address needs --num_processes and --process_id.")
    if not 0 <= index < count:
      raise ConfigError(f"--process_id must be in [0, --num_processes={count}); got {index}.")
    jax.distributed.initialize(address, num_processes=count, process_id=index)
  elif (os.environ.get("SSL_JAX_DISTRIBUTED") == "1" or int(os.environ.get("SLURM_NTASKS", "1")) > 1
        or "TPU_WORKER_HOSTNAMES" in os.environ):
    jax.distributed.initialize()


def _enable_compilation_cache():
  """XLA's persistent compilation cache: $SSL_JAX_COMPILATION_CACHE, else
  ~/.cache/ssl_jax/jax; an empty value disables it. Reruns and resumes skip compiling."""
  import jax
  cache = os.environ.get("SSL_JAX_COMPILATION_CACHE", os.path.expanduser("~/.cache/ssl_jax/jax"))
  if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def exit_code(error: Exception, workdir: str | None = None, storage_context: str = "",
              batch: str = "the batch", fit_advice: str = "lower the batch size") -> int:
  """The documented exit code of error (README "Exit codes"), after printing it as one
  paragraph on stderr; re-raises an error that has none, so that its traceback shows.

  workdir: where the command writes (a full or read-only disk there exits 74), and
  storage_context what it was writing; batch and fit_advice say what did not fit in device
  memory and what to change.
  """
  if isinstance(error, Preempted):
    return EXIT_PREEMPTED  # the loop has said which checkpoint it wrote
  for kind, code, what in ((ConfigError, EXIT_CONFIG, ""), (DataError, EXIT_DATA, "data: "),
                           (Diverged, EXIT_DIVERGED, "training diverged: ")):
    if isinstance(error, kind):
      return _report(code, f"{what}{error}")
  # These two come from libraries, wrapped in their own exceptions.
  if workdir is not None and failures.storage_failure(error):
    return _report(EXIT_STORAGE, f"storage: {storage_context}"
                   f"{failures.storage_message(error, workdir)}")
  oom = failures.out_of_memory(error)
  if oom is not None:
    return _report(EXIT_CONFIG, f"{batch} does not fit in memory on {failures.device_name()}; "
                   f"{fit_advice}. XLA said: {failures.xla_detail(oom)}")
  raise error


def _report(code: int, message: str) -> int:
  print(f"error: {message}", file=sys.stderr)
  return code
