"""Shared test setup: 8 CPU devices, one compilation cache per run, a tiny real corpus."""
import os
import shutil
import sys
import tempfile

# Must run before JAX initialises its backend.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
CACHE = os.environ.setdefault(
    "SSL_JAX_COMPILATION_CACHE", os.path.join(tempfile.gettempdir(), "ssl_jax_test_jax_cache"))

from ssl_jax.models import layers  # noqa: E402

layers.tune_xla_cpu()  # the per-host XLA:CPU options the commands use (bootstrap.start)

import jax  # noqa: E402
import pytest  # noqa: E402

from ssl_jax import config_check  # noqa: E402

jax.config.update("jax_compilation_cache_dir", CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
  """A few real Python modules (the stdlib json package), copied as a small text corpus."""
  out = tmp_path_factory.mktemp("corpus")
  src = os.path.dirname(__import__("json").__file__)
  for name in sorted(os.listdir(src)):
    if name.endswith(".py"):
      shutil.copy(os.path.join(src, name), out / name)
  return str(out)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


def run_cli(module, *args, env=None, timeout=600):
  """Runs `python -m module args` in a subprocess with one CPU device; returns CompletedProcess."""
  import subprocess
  full_env = dict(os.environ)
  full_env.pop("XLA_FLAGS", None)
  full_env.update(env or {})
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=full_env,
                        capture_output=True, text=True, timeout=timeout)


def tiny_lm_config(source: str, data_dir: str, **overrides):
  """configs/gpt_tiny.py shrunk to seconds: 1 layer, width 32, sequences of 32 bytes."""
  from configs import gpt_tiny
  c = gpt_tiny.get_config()
  c.data.source, c.data.data_dir = source, data_dir
  c.data.seq_len = c.model.max_len = 32
  c.model.num_layers, c.model.num_heads, c.model.width = 1, 2, 32
  c.total_steps, c.batch_size, c.log_every, c.eval_every, c.checkpoint_every = 12, 8, 2, 6, 6
  c.eval_steps, c.optim.warmup_steps = 2, 2
  return set_fields(c, overrides)


# The experiment configs: every configs/NAME.py but the package's own files.
CONFIG_NAMES = sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "configs"))
                      if name.endswith(".py") and name not in ("__init__.py", "common.py"))


def load_config(name: str, **changes):
  """configs/NAME.py's config with dotted-field changes applied."""
  import importlib
  return set_fields(importlib.import_module(f"configs.{name}").get_config(), changes)


def tiny_simclr_config(data_dir: str, **changes):
  """configs/simclr_digits.py shrunk to seconds: batch 16, a 4-wide encoder, one eval batch."""
  return load_config("simclr_digits", **{
      "data.data_dir": data_dir, "batch_size": 16, "model.width": 4, "head.out_dim": 8,
      "eval_steps": 1, **changes})


def metric_rows(workdir: str) -> list:
  """Every row of workdir/metrics.jsonl, in order."""
  import json
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def free_port() -> int:
  """A TCP port nothing listens on now (for a coordinator address)."""
  import socket
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def set_fields(config, changes: dict):
  """Applies {"dotted.field": value} changes to config in place; returns it."""
  return config_check.set_fields(config, changes)


def tiny_lm_flags(corpus_dir: str, data_dir: str, *extra):
  """Command-line flags of a tiny_lm_config-sized configs/gpt_tiny.py run on the corpus."""
  return ["--config", "configs/gpt_tiny.py", f"--config.data.source={corpus_dir}/*.py",
          f"--config.data.data_dir={data_dir}", *TINY_CLI_FLAGS, *extra]


TINY_CLI_FLAGS = [
    "--config.data.seq_len=32", "--config.model.max_len=32", "--config.model.num_layers=1",
    "--config.model.num_heads=2", "--config.model.width=32", "--config.total_steps=12",
    "--config.batch_size=8", "--config.log_every=2", "--config.eval_every=6",
    "--config.checkpoint_every=6", "--config.eval_steps=2", "--config.optim.warmup_steps=2",
]


PACKAGE_WORDS = {  # three made-up packages, each with its own vocabulary
    "geometry": ("point", "polygon", "area", "radius", "angle", "vertex", "distance", "sqrt"),
    "textproc": ("token", "sentence", "lower", "strip", "split", "regex", "vowel", "word"),
    "netio": ("socket", "packet", "retry", "timeout", "header", "buffer", "port", "send"),
}


def make_package_tree(root: str, modules: int = 10, seed: int = 0) -> str:
  """root/PACKAGE/modNN.py for PACKAGE_WORDS: synthetic Python, about 1.5 KB a module, whose
  names and comments say which package it belongs to. Returns root."""
  import random
  rng = random.Random(seed)
  for package, words in PACKAGE_WORDS.items():
    os.makedirs(os.path.join(root, package), exist_ok=True)
    open(os.path.join(root, package, "__init__.py"), "w").close()
    for m in range(modules):
      lines = [f'"""{package} helpers, part {m}: {" and ".join(rng.sample(words, 3))}."""', ""]
      for f in range(8):
        a, b, c = rng.sample(words, 3)
        lines += [f"def {a}_{b}_{m}_{f}({a}, {c}=None):",
                  f"  # the {b} of a {a}, by {c}",
                  f"  {b}_total = {a} * {rng.randint(2, 99)} + ({c} or {rng.randint(1, 9)})",
                  f"  return [{b}_total for {c} in range({rng.randint(2, 9)})]", ""]
      with open(os.path.join(root, package, f"mod{m:02d}.py"), "w") as out:
        out.write("\n".join(lines))
  return root


@pytest.fixture(scope="session")
def package_tree(tmp_path_factory):
  """A folder of 3 small synthetic Python packages (make_package_tree)."""
  return make_package_tree(str(tmp_path_factory.mktemp("packages")))


def _train_steps(config, parallelism, steps: int):
  """(losses, final state on the host) of `steps` SGD steps on the first batches."""
  import jax.numpy as jnp
  import optax
  from ssl_jax.data import pipeline
  from ssl_jax.step import TrainState, make_train_step
  from ssl_jax.tasks import make_task
  task = make_task(config, parallelism.axis_name)
  # SGD, not Adam: Adam would blow float noise in zero gradients (a ViT key bias) up to
  # full-size steps.
  tx = optax.sgd(0.1)

  def init_state(key):
    params, model_state = task.init(key)
    return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), model_state,
                      jax.random.key_data(jax.random.key(1)))

  parallelism.setup(jax.eval_shape(init_state, jax.random.key(0)))
  state = parallelism.init(init_state, jax.random.key(0))
  step = parallelism.step(make_train_step(task, tx, 1, parallelism.axis_name))
  data = pipeline.to_iterator(task.train_data)
  losses = []
  for _ in range(steps):
    state, metrics = step(state, parallelism.batch(next(data)))
    losses.append(float(parallelism.host(metrics)["loss"]))
  return losses, parallelism.host(state)


def same_on_one_jit8_pmap8(config, steps: int = 2):
  """Trains `steps` steps on 1 device, on 8 under jit and on 8 under pmap, asserts that the
  losses, parameters and model state agree, and returns the 1-device (losses, state)."""
  import chex
  import numpy as np
  from ssl_jax import parallel
  assert jax.device_count() == 8
  mesh8 = parallel.make_mesh(1)
  runs = {"one": parallel.JitParallel(parallel.make_mesh(1, jax.devices()[:1])),
          "jit8": parallel.JitParallel(mesh8), "pmap8": parallel.PmapParallel(mesh8)}
  results = {name: _train_steps(config, p, steps) for name, p in runs.items()}
  want_losses, want = results["one"]
  assert all(np.isfinite(want_losses)) and want_losses[0] != want_losses[1]
  for name in ("jit8", "pmap8"):
    losses, got = results[name]
    np.testing.assert_allclose(losses, want_losses, rtol=2e-4, err_msg=name)
    chex.assert_trees_all_close(got.params, want.params, atol=1e-4, rtol=1e-3)
    chex.assert_trees_all_close(got.model_state, want.model_state, atol=1e-4, rtol=1e-3)
  return want_losses, want
