"""benchmarks/device_check.sh --smoke on CPU: the GPU check's logic, before a GPU is lent.

A GPU lease is a few minutes once in a while, so the script must work the first time there.
The GPU image has jax, flax, optax and numpy but not grain, TFDS or ml_collections: the
check runs with those imports blocked. Figures are not checked, only that they are there.
"""
import json
import os
import subprocess
import sys

from conftest import REPO

# Runs device_check.py as __main__ with the packages the GPU image lacks made unimportable.
_BLOCKED_RUNNER = """
import importlib.abc, runpy, sys
BLOCKED = {"grain", "tensorflow_datasets", "ml_collections", "tensorboardX", "torch"}
class Block(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in BLOCKED:
      raise ImportError(f"{name} is not on the GPU image")
sys.meta_path.insert(0, Block())
sys.argv = ["benchmarks/device_check.py", "--smoke"]
runpy.run_path("benchmarks/device_check.py", run_name="__main__")
"""


def test_smoke_run_reports_every_check_without_data_packages(tmp_path):
  env = dict(os.environ, OUT=str(tmp_path), PYTHONPATH=REPO)
  env.pop("XLA_FLAGS", None)  # one device, as on the GPU machine
  out = subprocess.run([sys.executable, "-c", _BLOCKED_RUNNER], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
  report = json.loads((tmp_path / "device_check.json").read_text())
  by_name = {r["name"]: r for r in report["results"]}
  assert set(by_name) == {"matmul_bf16", "gpt2_small", "simclr_resnet18"}
  assert all("error" not in r for r in report["results"]), report
  assert by_name["matmul_bf16"]["tflops_per_s"] >= 0
  gpt = by_name["gpt2_small"]
  assert gpt["tokens_per_s"] > 0 and gpt["dtype"] == "bfloat16"
  assert 0 < gpt["mfu_vs_measured_matmul"] and gpt["loss"] == gpt["loss"]  # not NaN
  assert by_name["simclr_resnet18"]["images_per_s"] > 0
  table = (tmp_path / "device_check.md").read_text()
  assert table.startswith("### ") and "| gpt2_small |" in table and "| simclr_resnet18 |" in table


def test_shell_wrapper_runs_the_check_under_a_hard_limit_inside_8_minutes(tmp_path):
  """Runs the wrapper with a stand-in `timeout` first on PATH that records its arguments."""
  (tmp_path / "timeout").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$TIMEOUT_ARGS"\n')
  (tmp_path / "timeout").chmod(0o755)
  env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
             TIMEOUT_ARGS=str(tmp_path / "args"), PYTHON="the-python")
  out = subprocess.run(["bash", "benchmarks/device_check.sh", "--smoke"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
  assert out.returncode == 0, out.stderr
  limit, *command = (tmp_path / "args").read_text().splitlines()
  assert command == ["the-python", "benchmarks/device_check.py", "--smoke"]
  unit = {"s": 1, "m": 60, "h": 3600}.get(limit[-1], 1)
  assert 0 < float(limit.rstrip("smh")) * unit <= 8 * 60 - 30
