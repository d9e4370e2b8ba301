"""BYOL: the target gets no gradient and moves by the EMA rule; the task trains end to end."""
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from conftest import load_config, metric_rows
from ssl_jax.objectives import teacher
from ssl_jax.step import TrainState, make_train_step
from ssl_jax.tasks import make_task


def tiny_byol_config(data_dir, **changes):
  # A one-block ViT compiles far faster than a ResNet-18; the projector and
  # predictor keep their batch norms, so the target still carries batch statistics.
  return load_config("byol_digits", **{
      "data.data_dir": data_dir, "batch_size": 16, "model.name": "vit", "model.depth": 1,
      "model.width": 8, "model.num_heads": 2, "head.out_dim": 8, "head.hidden_dim": 16,
      "eval_steps": 1, **changes})


def test_target_decay_schedule_and_ema_rule():
  np.testing.assert_allclose(teacher.momentum(0, 100, 0.99), 0.99, rtol=1e-6)
  np.testing.assert_allclose(teacher.momentum(100, 100, 0.99), 1.0, rtol=1e-6)
  assert 0.99 < float(teacher.momentum(50, 100, 0.99)) < 1.0
  out = teacher.ema({"w": jnp.array([1.0])}, {"w": jnp.array([3.0])}, 0.75)
  np.testing.assert_allclose(out["w"], [1.5])


def test_target_gets_no_gradient_and_moves_by_ema(data_dir):
  cfg = tiny_byol_config(data_dir, total_steps=10)
  task = make_task(cfg)
  params, model_state = task.init(jax.random.key(0))
  batch = jax.tree.map(jnp.asarray, task.train_data[0])
  rng = jax.random.key(1)

  def loss_of(params, target_params):
    state = {**model_state, "target": {**model_state["target"], "params": target_params}}
    return task.loss_fn(params, state, batch, rng)[0]

  # Both gradients from one compilation.
  online_grads, grads = jax.jit(jax.grad(loss_of, argnums=(0, 1)))(
      params, model_state["target"]["params"])
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads))
  assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(online_grads["online"]))

  tx = optax.sgd(0.5)
  state = TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), model_state,
                     jax.random.key_data(rng))
  new, _ = jax.jit(make_train_step(task, tx))(state, batch)
  decay = teacher.momentum(0, cfg.total_steps, cfg.byol.base_decay)
  want = jax.tree.map(lambda t, o: decay * t + (1 - decay) * o,
                      model_state["target"]["params"], new.params["online"])
  chex.assert_trees_all_close(new.model_state["target"]["params"], want, atol=1e-6)
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                       new.model_state["target"]["params"], model_state["target"]["params"])
  assert max(jax.tree.leaves(moved)) > 0  # it did move, but only by the EMA


def test_byol_trains_and_evaluates(data_dir, tmp_path):
  from conftest import run_cli
  from ssl_jax import train
  cfg = tiny_byol_config(data_dir, total_steps=2, log_every=1, eval_every=2,
                         checkpoint_every=2)
  workdir = str(tmp_path / "byol")
  train.train(cfg, workdir)
  rows = metric_rows(workdir)
  assert all(np.isfinite(r["loss"]) for r in rows)
  out = run_cli("ssl_jax.evaluate", "--workdir", workdir, "--protocol", "knn",
                "--data_dir", data_dir, "--max_train_examples", "200", "--max_test_examples", "100")
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["split"] == "knn" and result["step"] == 2
  assert 0.0 <= result["top1_k20"] <= 1.0 and "random_init_top1_k20" in result
