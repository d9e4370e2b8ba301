"""One trainer per workdir on an object store: DIR/.lock is a lease, not an flock.

An object store cannot lock, but it can create an object only if it does not exist yet
(a precondition on generation 0), which makes claiming atomic. The holder renews the
lease every RENEW_SECS from a daemon thread and deletes it when the process exits
(also after SIGTERM and exit 75). A holder that died without exiting (kill -9, a lost
VM) leaves a lease that goes stale LEASE_SECS after its last renewal; the next trainer
then takes it over with a warning, so a requeued job waits at most that long.
"""
import atexit
import json
import os
import socket
import threading
import time

from ssl_jax import storage
from ssl_jax.errors import ConfigError

LEASE_SECS = 120.0
RENEW_SECS = 30.0
_held = {}  # lock URL -> threading.Event that stops its renewal


def _holder() -> dict:
  return {"host": socket.gethostname(), "pid": os.getpid(),
          "since": time.strftime("%Y-%m-%dT%H:%M:%S"), "renewed": time.time()}


def acquire(url: str, log=print, renew_secs: float = RENEW_SECS):
  """Claims the lease at url, or raises ConfigError naming its live holder."""
  if url in _held:
    return
  fs = storage.filesystem(url)
  for _ in range(2):  # a second try after taking over a stale lease
    holder = _holder()
    try:
      with fs.open(url, "xb") as f:  # create-only: fails if the object exists
        f.write(json.dumps(holder).encode())
      break
    except FileExistsError:
      current = _read(fs, url)
      age = time.time() - current.get("renewed", 0) if current else None
      if age is not None and age < LEASE_SECS:
        raise ConfigError(
            f"{url.rsplit('/', 1)[0]} is in use by another trainer (host {current.get('host')}, "
            f"pid {current.get('pid')}, since {current.get('since')}; lease renewed "
            f"{age:.0f} s ago). Two trainers on one workdir overwrite each other's checkpoints "
            f"and metrics: wait for it to finish or stop it, or train in another --workdir. "
            f"If that trainer is gone, its lease expires {LEASE_SECS - age:.0f} s from now.")
      log(f"WARNING: taking over the stale lease {url} "
          f"({'unreadable' if current is None else f'last renewed {age:.0f} s ago'}): the "
          "trainer that held it stopped without releasing it.")
      fs.rm(url)
  else:
    raise ConfigError(f"Could not claim {url}: another trainer claimed it at the same time.")
  stop = threading.Event()
  _held[url] = stop
  threading.Thread(target=_renew, args=(fs, url, holder, stop, renew_secs), daemon=True,
                   name="ssl_jax-lease").start()
  atexit.register(release, url)


def release(url: str):
  """Ends the renewal and deletes the lease (at exit; for tests and tools)."""
  stop = _held.pop(url, None)
  if stop is None:
    return
  stop.set()
  try:
    storage.filesystem(url).rm(url)
  except OSError:  # it expires by itself
    pass


def _renew(fs, url: str, holder: dict, stop: threading.Event, every: float):
  while not stop.wait(every):
    try:
      fs.pipe_file(url, json.dumps({**holder, "renewed": time.time()}).encode())
    except OSError:  # a transient failure: the lease outlives a few missed renewals
      pass


def _read(fs, url: str) -> dict | None:
  try:
    value = json.loads(fs.cat_file(url))
    return value if isinstance(value, dict) else None
  except (OSError, ValueError):
    return None
