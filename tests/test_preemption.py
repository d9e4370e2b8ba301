"""Preemption safety and exact resume: SIGTERM, kill -9, damaged checkpoints, NaN guard,
and the reproducibility tools (seed sweep, determinism check)."""
import json
import os
import signal
import subprocess
import sys
import time

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO, metric_rows, run_cli, tiny_lm_config, tiny_lm_flags
from ssl_jax import hugepages, train
from ssl_jax.checkpoint import load_latest
from ssl_jax.errors import Diverged

STEPS = 120


def _flags(corpus_dir, data_dir, workdir, checkpoint_every=10):
  return tiny_lm_flags(corpus_dir, data_dir, "--workdir", workdir,
                       f"--config.total_steps={STEPS}", "--config.log_every=1",
                       f"--config.checkpoint_every={checkpoint_every}", "--config.eval_every=40",
                       "--config.keep_checkpoints=20")


def _rows(workdir):
  return {(r["step"], r["split"]): {k: v for k, v in r.items() if not k.endswith("_per_s")}
          for r in metric_rows(workdir)}


@pytest.fixture(scope="module")
def straight(corpus_dir, data_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("straight"))
  out = run_cli("ssl_jax.main", *_flags(corpus_dir, data_dir, workdir))
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir


def _assert_same_as_straight(workdir, straight):
  step, a, _ = load_latest(workdir)
  _, b, _ = load_latest(straight)
  assert step == STEPS
  chex.assert_trees_all_equal(a["params"], b["params"])  # bit for bit
  chex.assert_trees_all_equal(a["opt_state"], b["opt_state"])
  got, want = _rows(workdir), _rows(straight)
  for key, row in want.items():
    assert got[key] == row, key


def _start(flags, module="ssl_jax.main"):
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  return subprocess.Popen([sys.executable, "-m", module, *flags], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, proc, timeout=300):
  deadline = time.time() + timeout
  while not predicate():
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    assert time.time() < deadline
    time.sleep(0.05)


def _logged_steps(workdir):
  path = os.path.join(workdir, "metrics.jsonl")
  return sum(1 for _ in open(path)) if os.path.exists(path) else 0


def test_sigterm_checkpoints_exits_75_and_resumes_exactly(straight, corpus_dir, data_dir,
                                                          tmp_path):
  workdir = str(tmp_path / "run")
  # No periodic checkpoint before the end: the one found must be the preemption's own.
  flags = _flags(corpus_dir, data_dir, workdir, checkpoint_every=1000)
  proc = _start(flags)
  _wait_for(lambda: _logged_steps(workdir) >= 13, proc)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 75, err[-3000:]
  stopped = load_latest(workdir)[0]
  assert 13 <= stopped < STEPS
  assert f"Preempted by signal {int(signal.SIGTERM)}: checkpoint at step {stopped}" in out
  assert os.listdir(os.path.join(workdir, "checkpoints")) == [str(stopped)]
  again = run_cli("ssl_jax.main", *flags)
  assert again.returncode == 0 and f"Resumed from the checkpoint at step {stopped}" in again.stdout
  _assert_same_as_straight(workdir, straight)


def test_kill_9_after_a_checkpoint_resumes_exactly(straight, corpus_dir, data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  proc = _start(_flags(corpus_dir, data_dir, workdir))
  ckpt = os.path.join(workdir, "checkpoints", "20")
  _wait_for(lambda: os.path.exists(ckpt) and _logged_steps(workdir) >= 24, proc)
  proc.kill()
  proc.communicate()
  again = run_cli("ssl_jax.main", *_flags(corpus_dir, data_dir, workdir))
  assert again.returncode == 0, again.stderr[-3000:]
  assert "Resumed from the checkpoint at step" in again.stdout
  _assert_same_as_straight(workdir, straight)


def test_unfinished_and_truncated_checkpoints_fall_back(straight, corpus_dir, data_dir, tmp_path):
  import shutil
  workdir = str(tmp_path / "run")
  shutil.copytree(straight, workdir)
  ckpts = os.path.join(workdir, "checkpoints")
  for step in range(60, STEPS + 1, 10):  # as if the run had died just after step 50's save
    shutil.rmtree(os.path.join(ckpts, str(step)))
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    kept = [line for line in f if json.loads(line)["step"] <= 50]
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
    f.writelines(kept)
  # An unfinished save of step 60 and a truncated step 50.
  os.makedirs(os.path.join(ckpts, "60.orbax-checkpoint-tmp-1234", "state"))
  data_files = [os.path.join(d, n) for d, _, names in os.walk(os.path.join(ckpts, "50", "state"))
                for n in names]
  biggest = max(data_files, key=os.path.getsize)
  with open(biggest, "r+b") as f:
    f.truncate(os.path.getsize(biggest) // 2)
  out = run_cli("ssl_jax.main", *_flags(corpus_dir, data_dir, workdir))
  assert out.returncode == 0, out.stderr[-3000:]
  assert "checkpoint at step 50 could not be restored" in out.stdout
  assert "Resumed from the checkpoint at step 40" in out.stdout
  assert os.path.isdir(os.path.join(ckpts, "50.unreadable"))  # kept, not deleted
  assert os.path.isdir(os.path.join(ckpts, "60.orbax-checkpoint-tmp-1234"))
  _assert_same_as_straight(workdir, straight)


def _nan_at_batch(index):
  """A next-token task whose `index`-th training batch yields a NaN loss."""
  from ssl_jax.tasks import language

  def make(config, axis_name=None):
    task = language.next_token_task(config, axis_name)
    inner = task.loss_fn

    def loss_fn(params, model_state, batch, rng):
      loss, (metrics, model_state) = inner(params, model_state, batch, rng)
      loss = loss * jnp.where(batch["tokens"][0, 0] < 0, jnp.nan, 1.0)  # NaN gradients too
      return loss, ({**metrics, "loss": loss}, model_state)

    def poison(i, batch):
      if i == index:
        batch = {"tokens": batch["tokens"].copy()}
        batch["tokens"][0, 0] = -1
      return batch

    task.loss_fn = loss_fn
    task.train_data = task.train_data.map_with_index(poison)
    return task
  return make


def test_nan_stops_with_step_and_metric_and_keeps_good_checkpoint(corpus_dir, data_dir, tmp_path):
  poisoned = _nan_at_batch(6)  # the 7th step
  cfg = tiny_lm_config(f"{corpus_dir}/*.py", data_dir, total_steps=12, checkpoint_every=4,
                       eval_every=12, log_every=4)
  with pytest.raises(Diverged, match="Non-finite loss and grad_norm at step 7"):
    train.train(cfg, str(tmp_path / "stop"), make_task=poisoned)
  assert load_latest(str(tmp_path / "stop"))[0] == 4
  assert sorted(os.listdir(tmp_path / "stop" / "checkpoints")) == ["4"]

  cfg.skip_nonfinite = True
  train.train(cfg, str(tmp_path / "skip"), make_task=poisoned)
  _, state, _ = load_latest(str(tmp_path / "skip"))
  assert all(np.isfinite(x).all() for x in jax_leaves(state["params"]))
  rows = metric_rows(str(tmp_path / "skip"))
  assert sum(r.get("skipped_steps", 0) for r in rows) == 1


def jax_leaves(tree):
  import jax
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_sweep_table_and_determinism_check(corpus_dir, data_dir, tmp_path):
  flags = tiny_lm_flags(corpus_dir, data_dir, "--config.total_steps=6", "--config.eval_every=6")
  out = run_cli("ssl_jax.sweep", *flags, "--workdir", str(tmp_path / "sweep"), "--seeds", "0,1")
  assert out.returncode == 0, out.stderr[-3000:]
  summary = json.load(open(tmp_path / "sweep" / "sweep.json"))
  loss = summary["final"]["eval/loss"]
  assert summary["seeds"] == [0, 1] and len(loss["values"]) == 2
  assert loss["values"][0] != loss["values"][1]  # seeds matter
  assert loss["mean"] == pytest.approx(np.mean(loss["values"]))
  assert "| eval/loss |" in open(tmp_path / "sweep" / "sweep.md").read()
  assert os.path.getsize(tmp_path / "sweep" / "curves.png") > 1000

  det = run_cli("ssl_jax.sweep", *flags, "--workdir", str(tmp_path / "det"), "--check_determinism")
  assert det.returncode == 0, det.stderr[-3000:]
  assert json.loads(det.stdout.strip().splitlines()[-1]) == {"bit_identical": True,
                                                              "first_difference": None}


def test_sigterm_stops_a_sweep_with_75_after_the_checkpoint(corpus_dir, data_dir, tmp_path):
  workdir = tmp_path / "sweep"
  proc = _start([*_flags(corpus_dir, data_dir, str(workdir)), "--seeds", "0,1"], "ssl_jax.sweep")
  _wait_for(lambda: _logged_steps(str(workdir / "seed_0")) >= 5, proc)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 75, err[-3000:]
  stopped = load_latest(str(workdir / "seed_0"))[0]
  assert f"Preempted by signal {int(signal.SIGTERM)}: checkpoint at step {stopped}" in out
  assert not (workdir / "seed_1").exists() and not (workdir / "sweep.json").exists()
  # The sweep trains like ssl_jax.main: re-executed with 2 MiB pages (hugepages.py).
  recorded = json.load(open(workdir / "seed_0" / "run.json"))["GLIBC_TUNABLES"]
  if hugepages.wanted({k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}):
    assert hugepages.TUNABLE in recorded.split(":")


def test_first_difference_names_step_and_metric():
  from ssl_jax.sweep import first_difference
  a = [{"step": 1, "split": "train", "loss": 2.0, "tokens_per_s": 5.0},
       {"step": 2, "split": "train", "loss": 1.5, "tokens_per_s": 5.0}]
  b = [{"step": 1, "split": "train", "loss": 2.0, "tokens_per_s": 9.0},
       {"step": 2, "split": "train", "loss": 1.25, "tokens_per_s": 9.0}]
  assert first_difference(a, a) is None and first_difference(a, b[:1] + a[1:]) is None
  assert first_difference(a, b).startswith("step 2 split train metric loss")


def test_two_processes_agree_on_the_stopping_step(straight, corpus_dir, data_dir, tmp_path):
  workdir = str(tmp_path / "two")
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
  cmd = ["bash", "launch/local.sh", "2", "--", sys.executable, "-m", "ssl_jax.main",
         *_flags(corpus_dir, data_dir, workdir)]
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  _wait_for(lambda: _logged_steps(workdir) >= 13, proc)
  proc.send_signal(signal.SIGTERM)  # local.sh forwards it to both processes
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 75, err[-3000:]
  stopped = load_latest(workdir)[0]
  assert 13 <= stopped < STEPS
  again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  got, want = _rows(workdir), _rows(straight)
  np.testing.assert_allclose([got[(s, "train")]["loss"] for s in range(1, STEPS + 1)],
                             [want[(s, "train")]["loss"] for s in range(1, STEPS + 1)], rtol=1e-3)
