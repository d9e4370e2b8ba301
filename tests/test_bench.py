"""benchmarks/bench.py plumbing on toy shapes: well-formed JSON rows, errors as rows.

Never a timing test: the figures themselves are not checked, only that they are there.
"""
import json
import os
import subprocess
import sys

from benchmarks import bench, common
from conftest import REPO


def test_scaling_rows_are_json_with_the_documented_fields():
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)  # one CPU device, as a user runs it
  out = subprocess.run(
      [sys.executable, "benchmarks/bench.py", "--only", "scaling", "--tiny", "--json",
       "--rounds", "1", "--window_s", "0.01"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  rows = [json.loads(line) for line in out.stdout.splitlines()]
  assert [r["name"] for r in rows] == ["scaling"]
  for r in rows:
    assert r["impl"] == "ssl_jax" and r["shape"]
    assert r["tokens_per_s"] > 0 and r["peak_mem_mb"] is not None
    assert 0 < r["mfu"] < 2  # a toy model vs a toy matmul: only the plumbing is checked
    assert isinstance(r["faults_per_step"], int) and r["faults_per_step"] >= 0


def test_a_row_that_cannot_start_becomes_an_error_row():
  w = bench.Worker("gpt", "missing", "-", "no_such_rows:nothing")
  assert not w.wait_ready()
  row = bench.row_of(w)
  assert row["impl"] == "missing" and "error" in row
  assert "error" in bench.fmt_table([row])


def test_flops_per_token_counts_dense_params_and_causal_attention():
  s = common.GPTShape(layers=2, heads=2, width=64, seq=32, batch=1, vocab=100)
  dense = 2 * 12 * 64 * 64 + 64 * 100
  assert common.gpt_train_flops_per_token(s) == 6 * dense + 6 * 2 * 32 * 64
