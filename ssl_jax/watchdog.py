"""Exit instead of hanging: a stall watchdog, and a bounded grace period after SIGTERM.

A multi-process job whose collectives stop matching (a dead peer, a stuck filesystem, a
runtime bug) blocks forever inside C++ and burns its allocation. The train loop calls
`beat(what)` whenever a step, an evaluation batch or a save makes progress; a daemon
thread checks the time since the last beat. Past `stall_secs` it dumps every thread's
stack (faulthandler) and exits EXIT_STALLED, so a scheduler requeues the job and the rerun
resumes from the last checkpoint. Compiling has no useful bound (minutes for a large model
on a busy host), so the loop `hold`s the clock over the first train step and the first
evaluation and the first save; it runs again from the next beat. After SIGTERM/SIGINT the loop normally checkpoints and
exits 75 at the next step; if it is blocked, the thread exits 75 after `grace_secs`
without a new checkpoint (the previous ones are complete: Orbax commits a save by an
atomic rename, so an interrupted save is an ignored tmp folder).
"""
import faulthandler
import os
import select
import signal
import sys
import threading
import time

from ssl_jax.errors import EXIT_PREEMPTED, EXIT_STALLED

DEFAULT_STALL_SECS = 1800  # above the first compile of a large model on a slow host
DEFAULT_GRACE_SECS = 90  # inside SLURM's 120 s between SIGTERM and SIGKILL (launch/slurm.sbatch)


class Watchdog:
  """A daemon thread that ends the process when progress stops; stall_secs=0 disables it."""

  def __init__(self, stall_secs: float = DEFAULT_STALL_SECS,
               grace_secs: float = DEFAULT_GRACE_SECS, exit_fn=os._exit, poll_secs: float = 1.0):
    self.stall_secs, self.grace_secs = stall_secs, grace_secs
    self._exit = exit_fn
    self._last, self._what, self._held = time.monotonic(), "start-up", False
    self._signalled_at = None
    self._stop = threading.Event()
    # Python runs signal handlers only between bytecodes of the main thread, never while it
    # is blocked inside XLA. The wakeup fd receives each signal number from C at once.
    self._read_fd, self._write_fd = os.pipe()
    os.set_blocking(self._write_fd, False)
    try:
      self._old_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
    except ValueError:  # not the main thread: signals are seen by the handlers only
      self._old_wakeup_fd = None
    self._thread = threading.Thread(target=self._run, args=(poll_secs,), name="ssl_jax-watchdog",
                                    daemon=True)
    self._thread.start()

  def beat(self, what: str):
    """Progress was made; `what` names it for the report if the next one never comes."""
    self._last, self._what, self._held = time.monotonic(), what, False

  def hold(self, what: str):
    """No stall is counted until the next beat (while compiling)."""
    self._what, self._held = what, True

  def signalled(self):
    """A termination signal arrived: the loop has grace_secs to checkpoint and exit."""
    if self._signalled_at is None:
      self._signalled_at = time.monotonic()

  def stop(self):
    self._stop.set()
    if self._old_wakeup_fd is not None:
      signal.set_wakeup_fd(self._old_wakeup_fd)
    os.write(self._write_fd, b"\0")  # wakes the thread now rather than after a poll
    self._thread.join()
    os.close(self._read_fd)
    os.close(self._write_fd)

  def _run(self, poll_secs):
    while not self._stop.is_set():
      if select.select([self._read_fd], [], [], poll_secs)[0]:
        received = os.read(self._read_fd, 64)
        if {signal.SIGTERM, signal.SIGINT} & set(received):
          self.signalled()
      if self._stop.is_set():
        return
      now = time.monotonic()
      if self._signalled_at is not None and now - self._signalled_at > self.grace_secs:
        self._fire(EXIT_PREEMPTED, f"still blocked {self.grace_secs:g} s after the termination "
                   f"signal (last progress: {self._what}). No checkpoint was written for the "
                   "current step; the last completed checkpoint is intact, and rerunning the "
                   "same command resumes from it.")
        return
      if self.stall_secs and not self._held and now - self._last > self.stall_secs:
        self._fire(EXIT_STALLED, f"no progress for {self.stall_secs:g} s (last progress: "
                   f"{self._what}). Exiting with code {EXIT_STALLED} so that a scheduler "
                   "requeues the job; rerunning the same command resumes from the last "
                   "checkpoint. Raise --watchdog_secs if a step, an evaluation or a save "
                   "legitimately takes longer.")
        return

  def _fire(self, code: int, message: str):
    print(f"\nerror: watchdog: {message}\nThread stacks at the time:", file=sys.stderr,
          flush=True)
    try:
      faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    except (AttributeError, ValueError, OSError):  # a stderr replaced by one with no fd
      faulthandler.dump_traceback(file=sys.__stderr__, all_threads=True)
    sys.stderr.flush()
    self._exit(code)
