"""Masked language modelling (BERT): predict the original token at the chosen positions.

The loss is the cross entropy over chosen positions only; unchosen positions carry no
weight, whatever the model predicts there.
"""
from ssl_jax.objectives import next_token, text_masking


def corrupt(key, tokens_BxT, cfg, mask_id: int, vocab_size: int, pad_id: int):
  """(inputs_BxT, targets_BxT, chosen_BxT, valid_BxT) by config.mlm: deletion, then masking."""
  import jax
  k_delete, k_mask = jax.random.split(key)
  valid_BxT = None
  if cfg.deletion_rate > 0:
    tokens_BxT, valid_BxT = text_masking.delete_tokens(k_delete, tokens_BxT, cfg.deletion_rate,
                                                       pad_id)
  if cfg.masking == "span":
    inputs_BxT, chosen_BxT = text_masking.span_mask(k_mask, tokens_BxT, mask_id, vocab_size,
                                                    cfg.rate, cfg.span_length, valid_BxT)
  else:
    inputs_BxT, chosen_BxT = text_masking.token_mask(k_mask, tokens_BxT, mask_id, vocab_size,
                                                     cfg.rate, valid_BxT)
  return inputs_BxT, tokens_BxT, chosen_BxT, valid_BxT


def eval_sums(logits_BxTxV, targets_BxT, chosen_BxT, token_bytes_V):
  """The eval sums over the chosen positions only (next_token.eval_sums)."""
  return next_token.eval_sums(logits_BxTxV, targets_BxT, token_bytes_V,
                              chosen_BxT.astype("float32"))


def metrics_from_eval_sums(sums):
  """loss, accuracy and bits per byte over the chosen positions."""
  return next_token.metrics_from_eval_sums(sums)
