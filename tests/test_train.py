"""The generic train loop on a language model: learning, checkpoints, exact resume."""
import json
import os

import chex
import jax
import numpy as np
import pytest

from conftest import metric_rows, tiny_lm_config
from ssl_jax import train
from ssl_jax.checkpoint import Checkpointer, load_latest


@pytest.fixture(scope="module")
def repetitive_corpus(tmp_path_factory):
  out = tmp_path_factory.mktemp("repetitive")
  for i in range(4):
    (out / f"f{i}.txt").write_text("the cat sat on the mat. " * 400)
  return str(out / "*.txt")


@pytest.mark.parametrize("model", ["gpt", "lstm"])
def test_a_few_steps_reduce_the_loss(repetitive_corpus, data_dir, tmp_path, model):
  cfg = tiny_lm_config(repetitive_corpus, data_dir, total_steps=30, eval_every=30,
                       checkpoint_every=30, **{"model.name": model, "optim.lr": 1e-2})
  train.train(cfg, str(tmp_path))
  rows = metric_rows(str(tmp_path))
  first = [r for r in rows if r["split"] == "train"][0]
  final = [r for r in rows if r["split"] == "eval"][-1]
  assert first["loss"] > 3.0  # near ln(257) ~ 5.5 at the start
  assert final["loss"] < 0.5 * first["loss"]
  assert {"loss", "accuracy", "bits_per_byte", "tokens_per_s", "lr"} <= set(rows[0])
  info = json.load(open(tmp_path / "run.json"))
  assert info["config"]["model"]["name"] == model and info["device_count"] == 8


def test_checkpoint_round_trips_state_and_iterator(corpus_dir, data_dir, tmp_path):
  cfg = tiny_lm_config(f"{corpus_dir}/*.py", data_dir, total_steps=6)
  train.train(cfg, str(tmp_path / "run"))
  step, saved, metadata = load_latest(str(tmp_path / "run"))
  assert step == 6 and metadata["step"] == 6 and metadata["tokenizer"]["kind"] == "bytes"
  # Save that state again with an advanced iterator, restore into fresh objects.
  from ssl_jax.data import pipeline, text
  count, rows = text.sequence_loader(text.load(cfg.data).train_tokens, 32)
  ds = pipeline.global_batches(count, 8, rows, seed=0)
  it = pipeline.to_iterator(ds)
  for _ in range(3):
    next(it)
  ckpt = Checkpointer(str(tmp_path / "again"), async_save=False)
  ckpt.save(3, saved, it, {"note": "x"})
  want_next = next(it)["tokens"]
  fresh_it = pipeline.to_iterator(ds)
  restored, meta = ckpt.restore(3, None, fresh_it)
  ckpt.close()
  chex.assert_trees_all_close(restored["params"], saved["params"])
  chex.assert_trees_all_close(restored["opt_state"], saved["opt_state"])
  assert meta == {"note": "x"}
  np.testing.assert_array_equal(next(fresh_it)["tokens"], want_next)


def test_resume_is_exact_and_finished_runs_exit_zero(corpus_dir, data_dir, tmp_path, capsys):
  import shutil
  workdir = str(tmp_path / "run")
  cfg = tiny_lm_config(f"{corpus_dir}/*.py", data_dir, total_steps=12, checkpoint_every=6)
  train.train(cfg, workdir)
  _, straight, _ = load_latest(workdir)
  straight_rows = metric_rows(workdir)
  # Lose everything after step 6, as a crash between checkpoints would, then resume.
  shutil.rmtree(os.path.join(workdir, "checkpoints", "12"))
  train.train(cfg, workdir)
  assert "Resumed from the checkpoint at step 6" in capsys.readouterr().out
  step, resumed, _ = load_latest(workdir)
  assert step == 12
  chex.assert_trees_all_equal(resumed["params"], straight["params"])
  chex.assert_trees_all_equal(resumed["opt_state"], straight["opt_state"])
  # Rows after step 6 were dropped and logged again: no duplicates, the same numbers.
  untimed = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_per_s")}  # noqa: E731
                          for r in rows]
  assert untimed(metric_rows(workdir)) == untimed(straight_rows)
  train.train(cfg, workdir)
  assert "nothing to do" in capsys.readouterr().out


def test_gradient_accumulation_matches_one_big_batch():
  import jax.numpy as jnp
  import optax
  from ssl_jax.step import TrainState, make_train_step
  from ssl_jax.tasks import Task

  def loss_fn(params, model_state, batch, rng):
    err = batch["x"] @ params["w"] - batch["y"]
    loss = jnp.mean(err ** 2)
    return loss, ({"loss": loss}, model_state)

  task = Task(init=None, loss_fn=loss_fn, eval_sums=None, finalize_eval=None, train_data=None,
              eval_data=[], unit=("examples", 8))
  tx = optax.sgd(0.1)
  params = {"w": jnp.ones((3, 2))}
  state = TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), {},
                     jax.random.key_data(jax.random.key(0)))
  batch = {"x": jax.random.normal(jax.random.key(1), (8, 3)),
           "y": jax.random.normal(jax.random.key(2), (8, 2))}
  one, m1 = jax.jit(make_train_step(task, tx, 1))(state, batch)
  four, m4 = jax.jit(make_train_step(task, tx, 4))(state, batch)
  chex.assert_trees_all_close(one.params, four.params, atol=1e-6)
  np.testing.assert_allclose(m1["loss"], m4["loss"], rtol=1e-5)
  assert int(four.step) == 1
