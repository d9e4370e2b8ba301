"""The train step, written once: gradients (optionally over microbatches), update, metrics.

Only jax/optax/flax here, so benchmarks and device checks can import it without the
data and checkpoint stack. train.py wraps it in jax.jit over a device mesh.
"""
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  model_state: Any  # non-trained variables: BN statistics, EMA targets; {} if none
  rng: jax.Array  # base key; step k uses fold_in(rng, k), so resuming replays the same keys


def make_train_step(task, tx, grad_accum: int = 1):
  """(state, batch) -> (state, metrics): one optimizer update, over `grad_accum` microbatches."""
  grad_fn = jax.value_and_grad(task.loss_fn, has_aux=True)

  def grads_and_metrics(params, model_state, batch, rng):
    if grad_accum == 1:
      (_, (metrics, model_state)), grads = grad_fn(params, model_state, batch, rng)
      return grads, metrics, model_state
    # Microbatch i takes rows i, i + A, i + 2A, ... so each device keeps its own rows.
    micro = jax.tree.map(
        lambda x: x.reshape(-1, grad_accum, *x.shape[1:]).swapaxes(0, 1), batch)

    def body(carry, xs):
      grads_sum, model_state = carry
      microbatch, i = xs
      (_, (metrics, model_state)), grads = grad_fn(
          params, model_state, microbatch, jax.random.fold_in(rng, i))
      return (jax.tree.map(jnp.add, grads_sum, grads), model_state), metrics

    zeros = jax.tree.map(jnp.zeros_like, params)
    (grads, model_state), metrics = jax.lax.scan(
        body, (zeros, model_state), (micro, jnp.arange(grad_accum)))
    grads = jax.tree.map(lambda g: g / grad_accum, grads)
    return grads, jax.tree.map(lambda m: m.mean(0), metrics), model_state

  def train_step(state: TrainState, batch):
    rng = jax.random.fold_in(state.rng, state.step)
    grads, metrics, model_state = grads_and_metrics(state.params, state.model_state, batch, rng)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    if task.after_update is not None:
      model_state = task.after_update(params, model_state, state.step)
    metrics = {**metrics, "grad_norm": optax.tree.norm(grads)}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         model_state=model_state), metrics

  return train_step
