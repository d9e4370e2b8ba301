"""Failures that no ssl_jax code raises but that have a documented exit code: the workdir's
disk filling up (or turning read-only) during a write, exit 74, and a batch that does not
fit in device memory, exit 2.

Both arrive wrapped. Orbax re-raises tensorstore's failed write as a ValueError
("... No space left on device [os_error_code='28']") from a background thread, and the
cleanup in the train loop's `finally` adds exceptions of its own on top. So the tests
below walk the whole chain of causes and contexts.
"""
import errno

from ssl_jax.errors import StorageError

# errno -> what happened to the disk, in words.
STORAGE_ERRNOS = {errno.ENOSPC: "is full", errno.EDQUOT: "is over its quota",
                  errno.EROFS: "has become read-only"}
# How tensorstore and orbax spell those errors inside the messages of other exceptions.
_SPELLINGS = {
    errno.ENOSPC: ("No space left on device", f"os_error_code='{errno.ENOSPC}'"),
    errno.EDQUOT: ("Disk quota exceeded", f"os_error_code='{errno.EDQUOT}'"),
    errno.EROFS: ("Read-only file system", f"os_error_code='{errno.EROFS}'"),
}


def causes(exc: BaseException):
  """exc and every exception it was raised from or while handling, each once."""
  seen, todo = set(), [exc]
  while todo:
    e = todo.pop(0)
    if e is None or id(e) in seen:
      continue
    seen.add(id(e))
    yield e
    todo += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]


def storage_failure(exc: BaseException):
  """(errno, the exception that says so) if exc comes from a full or read-only disk, else None."""
  chain = list(causes(exc))
  for e in chain:
    if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:
      return e.errno, e
  for e in chain:
    text = str(e)
    for code, spellings in _SPELLINGS.items():
      if any(s in text for s in spellings):
        return code, e
  for e in chain:
    if isinstance(e, StorageError):
      return None, e
  return None


def storage_message(exc: BaseException, workdir: str) -> str:
  """One paragraph for a storage failure found by storage_failure(exc)."""
  code, e = storage_failure(exc)
  if isinstance(e, OSError) and e.errno == code and e.strerror:
    detail = f"{e.strerror}" + (f": {e.filename}" if e.filename else "")
  else:
    detail = next((s for s in _SPELLINGS.get(code, ()) if s in str(e)), None) or str(e)[:300]
  what = STORAGE_ERRNOS.get(code, "failed")
  return (f"the disk holding {workdir} {what} ({detail}); training stopped. The checkpoints "
          "already on disk are intact (an unfinished save is ignored on restart): free some "
          "space and rerun the same command to resume.")


def out_of_memory(exc: BaseException):
  """The XLA error in exc's chain that reports exhausted device memory, or None."""
  import jax
  for e in causes(exc):
    if isinstance(e, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(e):
      return e
  return None


def device_name() -> str:
  import jax
  devices = jax.devices()
  kind = devices[0].device_kind
  return kind if len(devices) == 1 else f"{len(devices)} x {kind}"


def xla_detail(e: BaseException) -> str:
  """The first line of XLA's message, e.g. 'Out of memory while trying to allocate 9.5GiB'."""
  line = str(e).strip().splitlines()[0] if str(e).strip() else ""
  return line.replace("RESOURCE_EXHAUSTED:", "").strip()[:200]


def _is_storage_log(record) -> bool:
  exc = record.exc_info[1] if record.exc_info else None
  text = record.getMessage()
  return bool((exc is not None and storage_failure(exc))
              or any(s in text for spellings in _SPELLINGS.values() for s in spellings))


def quiet_storage_noise():
  """Lets a failed write be reported once, by the entry point, instead of by every thread.

  When the disk fills during an asynchronous save, orbax logs the error with its traceback
  from each of its threads, asyncio logs each write task whose error nobody retrieved, and
  tensorstore's callbacks into the event loops orbax has already closed print dozens of
  'Event loop is closed' tracebacks. None says more than the one message the entry point
  prints, so these are dropped here; everything else passes.
  """
  import logging
  import sys
  for name in ("absl", "asyncio"):  # orbax logs through absl
    logging.getLogger(name).addFilter(
        lambda record: not (record.levelno >= logging.ERROR and _is_storage_log(record)))
  previous = sys.unraisablehook

  def unraisable(info):
    if isinstance(info.exc_value, RuntimeError) and str(info.exc_value) == "Event loop is closed":
      return
    previous(info)
  sys.unraisablehook = unraisable
