"""The workdir's own state: one trainer at a time (DIR/.lock) and the recorded config (DIR/run.json).

On a local filesystem the lock is an flock on DIR/.lock. The OS drops it when its holder
exits or crashes, so it is never stale and needs no cleanup; the file only names the
holder for the refusal message. It is held until the process exits (a sweep holds one per
run it trains). Object stores have no locks: there DIR/.lock is a lease (object_lock.py).
"""
import errno
import fcntl
import json
import os
import socket
import time

import jax

from ssl_jax import object_lock, run_info, storage
from ssl_jax.errors import ConfigError

LOCK_FILE = ".lock"
_held = {}  # real path of a workdir -> file descriptor holding its lock
_BUSY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)


def claim(workdir: str, config, overrides: dict, allow_change: bool, log=print):
  """Locks the workdir (process 0 only), then records or checks its config in run.json."""
  if jax.process_index() == 0:
    lock(workdir, log)
  record_config(workdir, config, overrides, allow_change, log)


def lock(workdir: str, log=print):
  """Creates workdir if needed and locks it for this process; ConfigError if another holds it.

  A refused trainer changes nothing in the workdir. Where the filesystem cannot lock (some
  NFS mounts), it warns and goes on unlocked.
  """
  if storage.is_url(workdir):
    object_lock.acquire(storage.join(workdir, LOCK_FILE), log)
    return
  key = os.path.realpath(workdir)
  if key in _held:  # this process already trains here (e.g. a second call in one process)
    return
  path = os.path.join(workdir, LOCK_FILE)
  try:
    os.makedirs(workdir, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise ConfigError(f"--workdir {workdir} cannot be used: {e.strerror} ({e.filename}).")
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    holder = _read_holder(fd)
    os.close(fd)
    if e.errno in _BUSY:
      raise ConfigError(
          f"{workdir} is in use by another trainer ({holder}). Two trainers on one workdir "
          "overwrite each other's checkpoints and metrics: wait for it to finish or stop it, "
          "or train in another --workdir.")
    log(f"WARNING: could not lock {workdir} ({e.strerror}; the filesystem may not support "
        "file locks); going on unlocked, so make sure no other trainer uses this workdir.")
    return
  os.ftruncate(fd, 0)  # only now that it is ours: a refused trainer leaves the file as it was
  holder = {"host": socket.gethostname(), "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
  os.write(fd, (json.dumps(holder) + "\n").encode())
  _held[key] = fd


def release(workdir: str):
  """Drops this process's lock on workdir (the OS does it at exit; for tests and tools)."""
  if storage.is_url(workdir):
    object_lock.release(storage.join(workdir, LOCK_FILE))
    return
  fd = _held.pop(os.path.realpath(workdir), None)
  if fd is not None:
    os.close(fd)


def _read_holder(fd) -> str:
  """'host H, pid P, since T' from the lock file, or a plain phrase if it cannot be read."""
  try:
    holder = json.loads(os.pread(fd, 4096, 0))
    return f"host {holder['host']}, pid {holder['pid']}, since {holder['since']}"
  except (OSError, ValueError, KeyError, TypeError):  # the holder is between lock and write
    return "holder not recorded yet"


def has_checkpoint(workdir: str) -> bool:
  """Whether DIR/checkpoints holds a finished step to resume from (not only unfinished saves)."""
  names = storage.listdir(storage.join(workdir, "checkpoints"))
  return any(name.isdigit() for name in names)


def record_config(workdir: str, config, overrides: dict, allow_change: bool, log=print):
  """Writes run.json on the first start; later starts must have the same config.

  Before the first checkpoint nothing has been trained with the recorded config, so a
  different one (a retry after a failed first start) simply replaces it.
  """
  path = storage.join(workdir, "run.json")
  is_main = jax.process_index() == 0
  if not storage.exists(path):
    if is_main:
      run_info.write(path, run_info.collect(config, overrides))
    return
  try:
    recorded = run_info.read(path)
  except run_info.Unreadable as e:
    _replace_unreadable(path, str(e), config, overrides, allow_change, log)
    return
  diff = run_info.config_diff(recorded["config"], config.to_dict())
  if not diff:
    return
  if not has_checkpoint(workdir):
    log(f"No checkpoint in {workdir} yet, so nothing was trained with the config recorded "
        "in run.json; replacing it with this one:\n" + "\n".join(diff))
    if is_main:
      run_info.write(path, run_info.collect(config, overrides))
    return
  if not allow_change:
    raise ConfigError(
        f"The config differs from the one recorded in {path}:\n" + "\n".join(diff) +
        "\nUse a new --workdir, or pass --allow_config_change to resume with the new config.")
  log("Resuming with a changed config (--allow_config_change):\n" + "\n".join(diff))
  if is_main:
    info = run_info.collect(config, overrides)
    info["config_changes"] = recorded.get("config_changes", []) + [
        {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "diff": diff}]
    run_info.write(path, info)


def _replace_unreadable(path, problem, config, overrides, allow_change: bool, log):
  """A damaged run.json: refused, or with allow_change kept aside and recorded anew."""
  aside = path + ".unreadable"
  if not allow_change:
    raise ConfigError(
        f"{path} is damaged: {problem}. The checkpoints are unaffected. Restore run.json "
        "from a backup, or rerun with --allow_config_change to keep the damaged file as "
        f"{storage.basename(aside)} and record the current config in a new run.json.")
  if storage.exists(aside):  # an earlier damaged copy stays too
    aside += time.strftime(".%Y%m%d-%H%M%S")
  log(f"WARNING: {path} is damaged ({problem}); kept it as {aside} and recorded the current "
      "config (--allow_config_change).")
  if jax.process_index() == 0:
    storage.rename(path, aside)
    info = run_info.collect(config, overrides)
    info["config_changes"] = [{"time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                               "diff": [f"  (earlier record unreadable, kept as {aside})"]}]
    run_info.write(path, info)
