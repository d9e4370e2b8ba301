"""Text corruptions as pure JAX functions on device: BERT masking, span masking, token deletion.

Each takes a PRNG key and int tokens_BxT and is jittable; masking returns the corrupted
inputs and `chosen_BxT` (the positions the masked-LM loss is computed on).
"""
import jax
import jax.numpy as jnp


def replace_chosen(key, tokens_BxT, chosen_BxT, mask_id: int, vocab_size: int,
                   mask_prob: float = 0.8, random_prob: float = 0.1):
  """The BERT replacement rule on chosen positions: 80% [MASK], 10% random token, 10% kept."""
  k_kind, k_token = jax.random.split(key)
  u_BxT = jax.random.uniform(k_kind, tokens_BxT.shape)
  random_BxT = jax.random.randint(k_token, tokens_BxT.shape, 0, vocab_size)
  out = jnp.where(chosen_BxT & (u_BxT < mask_prob), mask_id, tokens_BxT)
  use_random = chosen_BxT & (u_BxT >= mask_prob) & (u_BxT < mask_prob + random_prob)
  return jnp.where(use_random, random_BxT, out)


def token_mask(key, tokens_BxT, mask_id: int, vocab_size: int, rate: float = 0.15,
               valid_BxT=None):
  """BERT: each (valid) position is chosen with probability `rate`."""
  k_choose, k_replace = jax.random.split(key)
  chosen_BxT = jax.random.uniform(k_choose, tokens_BxT.shape) < rate
  if valid_BxT is not None:
    chosen_BxT &= valid_BxT
  return replace_chosen(k_replace, tokens_BxT, chosen_BxT, mask_id, vocab_size), chosen_BxT


def span_mask(key, tokens_BxT, mask_id: int, vocab_size: int, rate: float = 0.15,
              span_length: int = 3, valid_BxT=None):
  """SpanBERT-style: contiguous spans of `span_length` tokens, about `rate` of all tokens."""
  k_start, k_replace = jax.random.split(key)
  starts_BxT = jax.random.uniform(k_start, tokens_BxT.shape) < rate / span_length
  # Position t is chosen when a span started at any of t - L + 1 ... t.
  chosen_BxT = starts_BxT
  for shift in range(1, span_length):
    shifted = jnp.pad(starts_BxT[:, :-shift], ((0, 0), (shift, 0)))
    chosen_BxT = chosen_BxT | shifted
  if valid_BxT is not None:
    chosen_BxT &= valid_BxT
  return replace_chosen(k_replace, tokens_BxT, chosen_BxT, mask_id, vocab_size), chosen_BxT


def delete_tokens(key, tokens_BxT, rate: float, pad_id: int):
  """Deletes each token with probability `rate`; survivors shift left, the tail is padding.

  Returns (tokens_BxT, valid_BxT) where valid marks real (non-padding) positions.
  """
  B, T = tokens_BxT.shape
  keep_BxT = jax.random.uniform(key, (B, T)) >= rate
  # Stable sort: kept tokens first, in their original order.
  order_BxT = jnp.argsort(~keep_BxT, axis=1, stable=True)
  kept_BxT = jnp.take_along_axis(tokens_BxT, order_BxT, axis=1)
  valid_BxT = jnp.arange(T)[None, :] < keep_BxT.sum(1, keepdims=True)
  return jnp.where(valid_BxT, kept_BxT, pad_id), valid_BxT
