"""BYOL on scikit-learn's digits: the same encoder, views and budget as simclr_digits.py,
so the two methods compare directly (python -m ssl_jax.evaluate ... linear|knn|fewshot).
"""
import ml_collections

from configs import simclr_digits  # the SimCLR recipe's data, encoder, views and budget


def get_config():
  c = simclr_digits.get_config()
  c.objective = "byol"
  del c["simclr"]
  c.byol = ml_collections.ConfigDict()
  # EMA decay of the target, raised to 1 by a cosine schedule. BYOL's 0.996 suits runs of
  # many epochs; a short CPU run needs a target that moves faster.
  c.byol.base_decay = 0.99
  c.head.hidden_dim = 128
  c.optim.weight_decay = 1.5e-6
  return c
