"""Barlow Twins on scikit-learn's digits: simclr_digits.py's data, encoder and budget; the
views' cross-correlation over the global batch is driven to the identity (< 10 minutes).
"""
import ml_collections

from configs import simclr_digits


def get_config():
  c = simclr_digits.get_config()
  c.objective = "barlow_twins"
  del c["simclr"]
  c.augment.preset = "byol"  # Barlow Twins uses BYOL's asymmetric views
  c.head.hidden_dim = 256  # the paper's projector is 8192-8192-8192
  c.head.out_dim = 256
  c.head.num_layers = 3
  c.barlow_twins = ml_collections.ConfigDict()
  c.barlow_twins.off_diagonal_weight = 0.0051  # the paper's lambda
  return c
