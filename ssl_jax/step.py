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
  # Raw key data (uint32) of the base key; step k uses fold_in(key, k), so resuming replays
  # the same keys. Raw data, not a typed key, so states move freely between devices and hosts.
  rng: jax.Array


def make_train_step(task, tx, grad_accum: int = 1, axis_name: str | None = None,
                    skip_nonfinite: bool = False):
  """(state, batch) -> (state, metrics): one optimizer update, over `grad_accum` microbatches.

  axis_name: under pmap, the mapped axis over which gradients and metrics are averaged.
  skip_nonfinite: a step whose loss or gradient norm is NaN/Inf leaves the state unchanged.
  """
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
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    grads, metrics, model_state = grads_and_metrics(state.params, state.model_state, batch, rng)
    if axis_name is not None:
      grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    if task.after_update is not None:
      model_state = task.after_update(params, model_state, state.step)
    grad_norm = optax.tree.norm(grads)
    # Bit 0: the loss is not finite; bit 1: the gradient norm is not finite.
    nonfinite = ((~jnp.isfinite(metrics["loss"])).astype(jnp.int32)
                 + 2 * (~jnp.isfinite(grad_norm)).astype(jnp.int32))
    metrics = {**metrics, "grad_norm": grad_norm, "nonfinite": nonfinite}
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              model_state=model_state)
    if skip_nonfinite:
      keep_old = nonfinite > 0
      new_state = jax.tree.map(lambda old, new: jnp.where(keep_old, old, new),
                               state.replace(step=state.step + 1), new_state)
    return new_state, metrics

  return train_step
