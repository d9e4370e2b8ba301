"""benchmarks/bench.py plumbing on toy shapes: well-formed JSON rows, errors as rows.

Never a timing test: the figures themselves are not checked, only that they are there.
"""
import json
import os
import subprocess
import sys

from benchmarks import bench, common
from conftest import REPO
from ssl_jax import host
from ssl_jax.models import layers


def test_scaling_rows_are_json_with_the_documented_fields(tmp_path, capsys):
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)  # one CPU device, as a user runs it
  out = subprocess.run(
      [sys.executable, "benchmarks/bench.py", "--only", "scaling", "--only", "bf16", "--tiny",
       "--json", "--rounds", "1", "--window_s", "0.01"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  rows = [json.loads(line) for line in out.stdout.splitlines()]
  assert [r["name"] for r in rows] == ["scaling", "matmul", "bf16", "bf16"]
  assert [r["impl"] for r in rows[2:]] == ["ssl_jax float32", "ssl_jax"]  # bf16 vs f32
  this_host = host.describe()
  for r in rows:  # every figure names the host it came from, and when
    assert r["host"] == this_host and r["host"]["kind"] and r["host"]["cpu"] and r["date"]
  saved = tmp_path / "rows.jsonl"
  saved.write_text(out.stdout)
  assert bench.main(["--render", str(saved)]) == 0
  table = capsys.readouterr().out
  assert table.startswith(f"Host: {this_host['kind']} ({this_host['cpu']}")
  assert rows[0]["date"] in table and "| scaling | ssl_jax |" in table
  for r in rows[:1] + rows[2:]:
    assert r["impl"].startswith("ssl_jax") and r["shape"]
    assert r["tokens_per_s"] > 0 and r["peak_mem_mb"] is not None
    assert 0 < r["mfu"] < 2  # a toy model vs a toy matmul: only the plumbing is checked
    assert isinstance(r["faults_per_step"], int) and r["faults_per_step"] >= 0


def test_a_row_that_cannot_start_becomes_an_error_row():
  w = bench.Worker("gpt", "missing", "-", "no_such_rows:nothing")
  assert not w.wait_ready()
  row = bench.row_of(w)
  assert row["impl"] == "missing" and "error" in row
  assert "error" in bench.fmt_table([row])


def _xla_train_flops(s: common.GPTShape) -> float:
  """XLA's own count of one training step's FLOPs for ssl_jax's GPT at shape s (the
  gradient of the loss: forward and backward), from the compiled program, never run."""
  import jax
  import jax.numpy as jnp
  import optax
  from ssl_jax.models.gpt import GPT
  from ssl_jax.models.layers import resolve_backends
  model = GPT(vocab_size=s.vocab, max_len=s.seq, num_layers=s.layers, num_heads=s.heads,
              width=s.width, **resolve_backends({"attention": "xla", "matmul": "xla"}))
  tokens = jnp.zeros((s.batch, s.seq), jnp.int32)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens)["params"])

  def loss(params, tokens):
    logits = model.apply({"params": params}, tokens, train=False)
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens).sum()

  cost = jax.jit(jax.grad(loss)).lower(params, tokens).compile().cost_analysis()
  return (cost[0] if isinstance(cost, list) else cost)["flops"]


def test_flops_per_token_agrees_with_xlas_count_of_the_real_model():
  """A second, independent count. XLA also counts element-wise work (a few percent) and
  computes attention above the causal diagonal, which the formula does not credit."""
  short = common.GPTShape(layers=2, heads=2, width=128, seq=8, batch=2, vocab=256)
  ratio = _xla_train_flops(short) / (common.gpt_train_flops_per_token(short) * short.tokens)
  assert 1.0 <= ratio < 1.06  # dense layers and the output projection, forward + backward
  long = common.GPTShape(layers=2, heads=2, width=128, seq=256, batch=1, vocab=256)
  counted = common.gpt_train_flops_per_token(long) * long.tokens
  masked_half = 3 * 2 * long.layers * long.seq * long.width * long.tokens
  assert 1.0 <= (_xla_train_flops(long) - counted) / masked_half < 1.3


def test_simclr_rows_use_the_cifar_recipes_temperature():
  from conftest import load_config
  assert common.SIMCLR_TEMPERATURE == load_config("simclr_cifar10_resnet18").simclr.temperature


def test_choice_variants_toggle_one_choice_each_against_this_hosts_default():
  variants = bench._choice_variants()
  label, kwargs, auto_env = variants[0]
  assert label == "auto" and kwargs == {}
  tuned = layers.xla_cpu_flags(host.describe()["flags"])
  assert auto_env["XLA_FLAGS"].split() == tuned and auto_env[layers.TUNING_OFF] == "0"
  envs = {label: env for label, _, env in variants}
  assert envs["huge pages off"]["SSL_JAX_HUGEPAGES"] == "0"
  for name, flag in layers.XLA_CPU_CANDIDATES.items():
    toggled = [env for label, env in envs.items() if label.endswith(name)]
    assert len(toggled) == 1 and (flag in toggled[0]["XLA_FLAGS"]) != (flag in tuned)
