"""Multi-process runs never hang silently: the watchdog, SIGTERM while blocked, and the
bounded dispatch that removed the evaluation deadlock."""
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import pytest

from conftest import REPO, free_port, tiny_lm_flags
from ssl_jax import watchdog
from ssl_jax.eval_loop import InFlight
from ssl_jax.checkpoint import load_latest
from ssl_jax.errors import EXIT_PREEMPTED, EXIT_STALLED


def _watch(**kwargs):
  codes = []
  dog = watchdog.Watchdog(exit_fn=codes.append, poll_secs=0.02, **kwargs)
  return dog, codes


def test_watchdog_fires_only_without_progress(capfd):
  dog, codes = _watch(stall_secs=0.3, grace_secs=10)
  for i in range(10):  # beats every 0.1 s: alive for 1 s, longer than stall_secs
    dog.beat(f"step {i}")
    time.sleep(0.1)
  assert codes == []
  time.sleep(0.6)
  dog.stop()
  assert codes == [EXIT_STALLED]
  err = capfd.readouterr().err
  assert "no progress for 0.3 s (last progress: step 9)" in err
  assert "test_watchdog_fires_only_without_progress" in err  # the main thread's stack


def test_watchdog_hold_suspends_the_stall_clock_until_the_next_beat():
  dog, codes = _watch(stall_secs=0.2, grace_secs=10)
  dog.hold("compiling")
  time.sleep(0.5)
  assert codes == []
  dog.beat("first step")
  time.sleep(0.5)
  dog.stop()
  assert codes == [EXIT_STALLED]


def test_watchdog_bounds_the_exit_after_a_signal(capfd):
  dog, codes = _watch(stall_secs=0, grace_secs=0.3)
  time.sleep(0.5)
  assert codes == []  # stall_secs=0: never a stall, and no signal yet
  dog.signalled()
  time.sleep(0.6)
  dog.stop()
  assert codes == [EXIT_PREEMPTED]
  assert "still blocked 0.3 s after the termination signal" in capfd.readouterr().err


def test_in_flight_waits_for_the_one_before_last():
  done = []
  in_flight = InFlight(depth=2, on_done=done.append)
  x = jnp.ones(3)
  for i in range(4):
    in_flight.add(x * i, f"c{i}")
  assert done == ["c0", "c1", "c2"]  # c3 may still run while the host prepares the next


def test_two_process_evaluation_of_300_batches_finishes():
  """Without InFlight, this deadlocked in 3 of 3 tries (every process blocked in gloo)."""
  port = free_port()
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  worker = os.path.join(REPO, "tests", "eval_worker.py")
  procs = [subprocess.Popen([sys.executable, worker, str(i), str(port)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  try:
    outs = [p.communicate(timeout=120) for p in procs]
  except subprocess.TimeoutExpired:
    outs = None
  finally:
    for p in procs:
      p.kill()  # SIGKILL: a process blocked in a collective ignores SIGTERM
  assert outs is not None, "the two-process evaluation hung"
  for i, (p, (out, err)) in enumerate(zip(procs, outs)):
    assert p.returncode == 0, err[-3000:]
    assert f"process {i} evaluated 4800 examples" in out


def _start(workdir, corpus_dir, data_dir, port, process_id, extra):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  flags = tiny_lm_flags(corpus_dir, data_dir, "--workdir", workdir,
                        "--config.total_steps=100000", "--config.eval_every=5",
                        "--config.checkpoint_every=5", "--config.log_every=1",
                        f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                        f"--process_id={process_id}", *extra)
  return subprocess.Popen([sys.executable, "-m", "ssl_jax.main", *flags], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _two_processes_then_stop_one(workdir, corpus_dir, data_dir, extra):
  """Starts a 2-process run, waits for its first checkpoint, then freezes process 1 (a
  peer that is alive but stuck), so process 0 blocks inside a collective."""
  port = free_port()
  procs = [_start(workdir, corpus_dir, data_dir, port, i, extra) for i in range(2)]
  deadline = time.time() + 300
  while not os.path.isdir(os.path.join(workdir, "checkpoints", "5")):
    assert time.time() < deadline and procs[0].poll() is None, procs[0].communicate()[1][-3000:]
    time.sleep(0.2)
  procs[1].send_signal(signal.SIGSTOP)
  return procs


def _finish(procs, timeout):
  try:
    return procs[0].wait(timeout=timeout), procs[0].communicate()[1]
  finally:
    for p in procs:
      p.send_signal(signal.SIGCONT)
      p.kill()
      p.communicate()


def test_a_stuck_peer_makes_the_watchdog_exit_76_with_stacks(corpus_dir, data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  procs = _two_processes_then_stop_one(workdir, corpus_dir, data_dir, ["--watchdog_secs=6"])
  code, err = _finish(procs, timeout=120)
  assert code == EXIT_STALLED, err[-3000:]
  assert "error: watchdog: no progress for 6 s" in err
  assert "Thread stacks at the time:" in err and 'File "' in err


def test_sigterm_while_blocked_exits_75_within_the_grace_period(corpus_dir, data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  procs = _two_processes_then_stop_one(workdir, corpus_dir, data_dir,
                                       ["--watchdog_secs=0", "--preempt_grace_secs=3"])
  time.sleep(2)  # let process 0 reach the collective that process 1 will never join
  procs[0].send_signal(signal.SIGTERM)
  sent = time.time()
  code, err = _finish(procs, timeout=60)
  assert code == EXIT_PREEMPTED, err[:3000]
  assert time.time() - sent < 30
  assert "still blocked 3 s after the termination signal" in err
  step, state, _ = load_latest(workdir)  # the last completed checkpoint restores
  assert step >= 5 and int(state["step"]) == step
