"""Scale-out: 1 device, 8-device jit, pmap, FSDP, 2 processes, and restoring on other counts
all follow the same loss trajectory on the same data."""
import json
import os
import shutil
import subprocess

import chex
import jax
import numpy as np
import pytest

from conftest import REPO, metric_rows, run_cli, tiny_lm_config, tiny_lm_flags, tiny_simclr_config
from ssl_jax import parallel, train
from ssl_jax.checkpoint import load_latest

STEPS = 8


def _losses(workdir, split="train"):
  return np.array([r["loss"] for r in metric_rows(workdir) if r["split"] == split])


def _cli_flags(corpus_dir, data_dir, *extra):
  return tiny_lm_flags(corpus_dir, data_dir, f"--config.total_steps={STEPS}",
                       "--config.log_every=1", f"--config.checkpoint_every={STEPS // 2}", *extra)


@pytest.fixture(scope="module")
def one_device_run(corpus_dir, data_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("one_device"))
  out = run_cli("ssl_jax.main", *_cli_flags(corpus_dir, data_dir), "--workdir", workdir)
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir


@pytest.mark.parametrize("overrides", [
    {},                                   # jit, batch over 8 devices
    {"parallel": "pmap"},                 # classic replicated data parallel
    {"mesh.fsdp": 8},                     # parameters and optimizer state sharded
    {"mesh.fsdp": 2},                     # a 4 x 2 (data, fsdp) mesh
], ids=["jit8", "pmap8", "fsdp8", "data4_fsdp2"])
def test_eight_devices_match_one_device(overrides, one_device_run, corpus_dir, data_dir, tmp_path):
  assert jax.device_count() == 8
  cfg = tiny_lm_config(f"{corpus_dir}/*.py", data_dir, total_steps=STEPS, log_every=1,
                       checkpoint_every=STEPS // 2, **overrides)
  train.train(cfg, str(tmp_path))
  want, got = _losses(one_device_run), _losses(str(tmp_path))
  assert len(got) == len(want) == STEPS
  np.testing.assert_allclose(got, want, rtol=2e-4)
  assert got[-1] < got[0]
  np.testing.assert_allclose(_losses(str(tmp_path), "eval"), _losses(one_device_run, "eval"),
                             rtol=2e-4)
  _, a, _ = load_latest(one_device_run)
  _, b, _ = load_latest(str(tmp_path))
  chex.assert_trees_all_close(a["params"], b["params"], atol=1e-5, rtol=1e-3)


def test_two_processes_match_one_process(one_device_run, corpus_dir, data_dir, tmp_path):
  workdir = str(tmp_path / "two_proc")
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
  cmd = ["bash", "launch/local.sh", "2", "--", os.path.join(REPO, ".venv/bin/python"), "-m",
         "ssl_jax.main", *_cli_flags(corpus_dir, data_dir), "--workdir", workdir]
  out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-4000:]
  np.testing.assert_allclose(_losses(workdir), _losses(one_device_run), rtol=2e-4)
  info = json.load(open(os.path.join(workdir, "run.json")))
  assert info["process_count"] == 2 and info["device_count"] == 8
  # Only process 0 wrote metrics: one row per step, not two.
  assert len(_losses(workdir)) == STEPS


def test_checkpoint_from_8_devices_restores_on_2(corpus_dir, data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  flags = [*_cli_flags(corpus_dir, data_dir, "--config.mesh.fsdp=8"), "--workdir", workdir]
  eight = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  out = run_cli("ssl_jax.main", *flags, env=eight)
  assert out.returncode == 0, out.stderr[-3000:]
  _, straight, _ = load_latest(workdir)
  shutil.rmtree(os.path.join(workdir, "checkpoints", str(STEPS)))
  two = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  flags[flags.index("--config.mesh.fsdp=8")] = "--config.mesh.fsdp=2"
  out = run_cli("ssl_jax.main", *flags, "--allow_config_change", env=two)
  assert out.returncode == 0, out.stderr[-3000:]
  assert f"Resumed from the checkpoint at step {STEPS // 2}" in out.stdout
  step, resumed, _ = load_latest(workdir)
  assert step == STEPS
  chex.assert_trees_all_close(resumed["params"], straight["params"], atol=1e-5, rtol=1e-3)


SIMCLR_STEPS = 4
# A one-block ViT compiles in seconds; its projection head still has batch norm, so the
# cross-device batch statistics and the gathered negatives are both exercised.
SIMCLR_TINY = {"batch_size": 16, "model.name": "vit", "model.depth": 1, "model.width": 8,
               "model.num_heads": 2, "head.out_dim": 8, "eval_steps": 1,
               "total_steps": SIMCLR_STEPS, "log_every": 1, "eval_every": SIMCLR_STEPS,
               "checkpoint_every": SIMCLR_STEPS}


def _simclr_config(data_dir, **overrides):
  return tiny_simclr_config(data_dir, **{**SIMCLR_TINY, **overrides})


@pytest.fixture(scope="module")
def simclr_one_device(data_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("simclr_one_device"))
  one = parallel.JitParallel(parallel.make_mesh(1, jax.devices()[:1]))
  train.train(_simclr_config(data_dir), workdir, make_parallel=lambda kind, fsdp=1: one)
  return workdir


@pytest.mark.parametrize("overrides", [{}, {"parallel": "pmap"}, {"mesh.fsdp": 8}],
                         ids=["jit8", "pmap8", "fsdp8"])
def test_simclr_eight_devices_match_one_device(overrides, simclr_one_device, data_dir, tmp_path):
  """Views are drawn per global example, batch norm and NT-Xent see the global batch: the
  same numbers whatever the wrapper or device count."""
  train.train(_simclr_config(data_dir, **overrides), str(tmp_path))
  want, got = _losses(simclr_one_device), _losses(str(tmp_path))
  assert len(got) == len(want) == SIMCLR_STEPS
  np.testing.assert_allclose(got, want, rtol=2e-4)
  np.testing.assert_allclose(_losses(str(tmp_path), "eval"), _losses(simclr_one_device, "eval"),
                             rtol=2e-4)
  _, a, _ = load_latest(simclr_one_device)
  _, b, _ = load_latest(str(tmp_path))
  chex.assert_trees_all_close(a["params"], b["params"], atol=1e-5, rtol=1e-3)
  chex.assert_trees_all_close(a["model_state"], b["model_state"], atol=1e-5, rtol=1e-3)


def test_simclr_two_processes_match_one_device(simclr_one_device, data_dir, tmp_path):
  """Each process loads its own rows; the views, batch statistics and negatives are still
  those of the global batch."""
  workdir = str(tmp_path / "two_proc")
  overrides = {"data.data_dir": data_dir, **SIMCLR_TINY}
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
  cmd = ["bash", "launch/local.sh", "2", "--", os.path.join(REPO, ".venv/bin/python"), "-m",
         "ssl_jax.main", "--config", "configs/simclr_digits.py", "--workdir", workdir,
         *[f"--config.{k}={v}" for k, v in overrides.items()]]
  out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-4000:]
  np.testing.assert_allclose(_losses(workdir), _losses(simclr_one_device), rtol=2e-4)
  np.testing.assert_allclose(_losses(workdir, "eval"), _losses(simclr_one_device, "eval"),
                             rtol=2e-4)
