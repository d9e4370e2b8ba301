"""Runs N consecutive multi-process training jobs and reports how many finished.

  python benchmarks/stress_multiprocess.py --runs 20 [--processes 2 --devices 4] [-- --config.F=V ...]

Each run is `launch/local.sh P -- python -m ssl_jax.main --config configs/gpt_tiny.py` in a
fresh workdir, with the default evaluation (64 batches), several evaluations and
checkpoints, and metrics fetched at every log step: every kind of multi-process
computation the loop runs. A run passes when every process exits 0 and the final
checkpoint exists; one still running after --timeout is killed and counted as hung (its
log is kept). Exits 1 unless all runs pass.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FLAGS = ["--config.total_steps=30", "--config.eval_every=10",
                 "--config.checkpoint_every=10", "--config.log_every=5"]


def run_once(i, args, extra, root) -> tuple[str, float]:
  workdir = os.path.join(root, f"run_{i}")
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={args.devices}")
  command = ["bash", os.path.join(REPO, "launch", "local.sh"), str(args.processes), "--",
             sys.executable, "-m", "ssl_jax.main", "--config", args.config, "--workdir", workdir,
             f"--watchdog_secs={args.timeout // 2}", *DEFAULT_FLAGS, *extra]
  log_path = os.path.join(root, f"run_{i}.log")
  start = time.time()
  with open(log_path, "w") as log:
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
      code = proc.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
      return "hung", time.time() - start
  seconds = time.time() - start
  steps = [d for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit()] \
      if os.path.isdir(os.path.join(workdir, "checkpoints")) else []
  if code == 0 and steps:
    shutil.rmtree(workdir, ignore_errors=True)
    os.remove(log_path)
    return "ok", seconds
  return f"exit {code}", seconds


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", type=int, default=20)
  parser.add_argument("--processes", type=int, default=2)
  parser.add_argument("--devices", type=int, default=4, help="CPU devices per process")
  parser.add_argument("--config", default="configs/gpt_tiny.py")
  parser.add_argument("--timeout", type=int, default=300, help="seconds before a run is hung")
  parser.add_argument("--keep", default=None, help="folder for the logs of failed runs")
  args, extra = parser.parse_known_args()
  extra = [a for a in extra if a != "--"]
  root = args.keep or tempfile.mkdtemp(prefix="ssl_jax_stress_")
  os.makedirs(root, exist_ok=True)
  passed = 0
  for i in range(args.runs):
    outcome, seconds = run_once(i, args, extra, root)
    passed += outcome == "ok"
    print(f"run {i + 1}/{args.runs}: {outcome} ({seconds:.0f} s)", flush=True)
  kept = f"; logs of failed runs in {root}" if passed < args.runs else ""
  if not kept and not args.keep:
    shutil.rmtree(root, ignore_errors=True)
  print(f"finished: {passed}/{args.runs} multi-process runs ({args.processes} processes x "
        f"{args.devices} CPU devices){kept}", flush=True)
  sys.exit(0 if passed == args.runs else 1)


if __name__ == "__main__":
  main()
