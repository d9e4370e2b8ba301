"""Next-token prediction: cross entropy of logits at t against the token at t + 1.

Evaluation works on eval sums: additive statistics of a batch (summed losses, token and
byte counts) that add up over batches and give exact corpus means once finalized.
"""
import jax
import jax.numpy as jnp
import optax

LN2 = 0.6931471805599453


def eval_sums(logits_BxTxV, targets_BxT, token_bytes_V, weights_BxT=None):
  """The eval sums of a batch, each position weighted by weights_BxT (default 1)."""
  if weights_BxT is None:
    weights_BxT = jnp.ones(targets_BxT.shape, jnp.float32)
  nll_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, targets_BxT)
  correct_BxT = (jnp.argmax(logits_BxTxV, -1) == targets_BxT).astype(jnp.float32)
  return {
      "nll": jnp.sum(nll_BxT * weights_BxT),
      "correct": jnp.sum(correct_BxT * weights_BxT),
      "tokens": jnp.sum(weights_BxT),
      "bytes": jnp.sum(token_bytes_V[targets_BxT] * weights_BxT),
  }


def metrics_from_eval_sums(sums):
  """loss (nats per token), accuracy, bits per byte (nats -> bits over the UTF-8 bytes)."""
  return {
      "loss": sums["nll"] / sums["tokens"],
      "accuracy": sums["correct"] / sums["tokens"],
      "bits_per_byte": sums["nll"] / LN2 / jnp.maximum(sums["bytes"], 1.0),
  }


def split_inputs_targets(tokens_BxT1):
  return tokens_BxT1[:, :-1], tokens_BxT1[:, 1:]


def loss_fn(apply_fn, token_bytes_V, params, batch, rng, train=True):
  """(loss, metrics) for a batch {"tokens": int[B, T+1]}; apply_fn(params, tokens, rng, train)."""
  inputs_BxT, targets_BxT = split_inputs_targets(batch["tokens"])
  logits_BxTxV = apply_fn(params, inputs_BxT, rng, train)
  metrics = metrics_from_eval_sums(eval_sums(logits_BxTxV, targets_BxT, token_bytes_V))
  return metrics["loss"], metrics


def batch_eval_sums(apply_fn, token_bytes_V, params, batch):
  """The eval sums of the model (apply_fn, as for loss_fn) on {"tokens": int[B, T+1]}."""
  inputs_BxT, targets_BxT = split_inputs_targets(batch["tokens"])
  logits_BxTxV = apply_fn(params, inputs_BxT, None, False)
  return eval_sums(logits_BxTxV, targets_BxT, token_bytes_V)
