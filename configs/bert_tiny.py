"""Masked language modelling (BERT recipe) with a small bidirectional encoder on the stdlib.

Same corpus, tokenizer and Transformer blocks as configs/gpt_tiny.py; a few CPU minutes.
"""
import ml_collections

from configs import gpt_tiny  # the GPT config's corpus, tokenizer and blocks


def get_config():
  c = gpt_tiny.get_config()
  c.objective = "masked_lm"
  c.model.name = "bert"
  # Logits from the tied embedding alone. For an exact Hugging Face export
  # (MegatronBertForMaskedLM) train with --config.model.position=learned
  # --config.model.mlm_head=transform (dense-gelu-LayerNorm and an output bias first):
  # that layout reached a higher masked-LM loss in these 1,200 steps (docs/transfer.md).
  c.model.mlm_head = "tied"
  c.total_steps = 1200
  c.batch_size = 16  # only the 15% chosen tokens carry a loss: larger batches than GPT's
  c.optim.lr = 1e-3
  c.mlm = ml_collections.ConfigDict()
  c.mlm.rate = 0.15  # of tokens chosen; of those 80% [MASK], 10% random, 10% kept
  c.mlm.masking = "token"  # or "span" (contiguous spans of span_length tokens)
  c.mlm.span_length = 3
  c.mlm.deletion_rate = 0.0  # token deletion before masking, a text augmentation
  return c
