"""VICReg on scikit-learn's digits: simclr_digits.py's data, encoder and budget, with
variance, invariance and covariance terms over the global batch (< 10 minutes).
"""
import ml_collections

from configs import simclr_digits


def get_config():
  c = simclr_digits.get_config()
  c.objective = "vicreg"
  del c["simclr"]
  c.augment.preset = "byol"  # VICReg uses BYOL's asymmetric views
  c.head.hidden_dim = 256  # the paper's expander is 8192-8192-8192
  c.head.out_dim = 256
  c.head.num_layers = 3
  c.vicreg = ml_collections.ConfigDict()
  c.vicreg.invariance_weight = 25.0  # the paper's lambda, mu and nu
  c.vicreg.variance_weight = 25.0
  c.vicreg.covariance_weight = 1.0
  return c
