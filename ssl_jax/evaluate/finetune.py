"""Fine-tuning: the whole encoder plus a new linear head trained on the labels (AdamW,
warmup + cosine, the encoder's own light augmentation); top-1 on the test split.

For the random-init baseline this is supervised training from scratch with the same
budget; for raw pixels it is a logistic regression trained the same way.
"""
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssl_jax.evaluate.transfer import Encoder, Labelled, encoders, extract, prefixed
from ssl_jax.evaluate.uncertainty import Estimate
from ssl_jax.optim import weight_decay_mask


@functools.lru_cache(maxsize=None)
def _optimizer(lr: float, steps: int):
  """Cached, so the same settings give the same (hashable, static) object."""
  schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(1, steps // 10), max(steps, 2))
  return optax.adamw(schedule, weight_decay=1e-4, mask=weight_decay_mask)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _train_step(apply, augment, tx, params, opt_state, state, x, labels, key):
  """Static apply/augment/tx: encoders that share them share the compilation."""
  if augment is not None:
    x = augment(key, x)

  def loss_fn(params):
    features, new_state = apply(params["encoder"], state, x, True)
    logits = features @ params["head"]["w"] + params["head"]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), new_state

  (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, state, loss


def finetune(encoder: Encoder, train: Labelled, test: Labelled, num_classes: int,
             steps: int, lr: float, batch_size: int, seed: int = 0):
  """(metrics, the tuned encoder)."""
  batch_size = min(batch_size, len(train))
  feature_dim = jax.eval_shape(
      lambda p, s, x: encoder.apply(p, s, x, False)[0], encoder.params, encoder.state,
      jnp.asarray(train.inputs[:1])).shape[-1]
  params = {"encoder": encoder.params,
            "head": {"w": jnp.zeros((feature_dim, num_classes)), "b": jnp.zeros((num_classes,))}}
  tx = _optimizer(float(lr), int(steps))
  opt_state, state = tx.init(params), encoder.state
  rng = np.random.default_rng(seed)
  key = jax.random.key(seed)
  loss = np.nan
  for i in range(steps):
    idx = rng.choice(len(train), batch_size, replace=False)
    params, opt_state, state, loss = _train_step(
        encoder.apply, encoder.augment, tx, params, opt_state, state, train.inputs[idx],
        train.labels[idx], jax.random.fold_in(key, i))
  tuned = Encoder(encoder.apply, params["encoder"], state)
  features = extract(tuned, test.inputs, batch_size)
  logits = features @ np.asarray(params["head"]["w"]) + np.asarray(params["head"]["b"])
  metrics = {"top1": Estimate(np.argmax(logits, -1) == test.labels),
             "train_loss": float(loss)}
  return metrics, tuned


def run(run, options) -> dict:
  from ssl_jax.evaluate import transfer_for
  transfer = transfer_for(run, options)
  out = {}
  for name, encoder in encoders(transfer, options.baselines, options.seed).items():
    start = time.time()
    metrics, _ = finetune(encoder, transfer.train, transfer.test, transfer.num_classes,
                          options.finetune_steps, options.finetune_lr, options.batch_size,
                          options.seed)
    metrics["seconds"] = time.time() - start
    out.update(prefixed(name, metrics))
  return out
