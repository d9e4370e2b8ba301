"""SimSiam on scikit-learn's digits: simclr_digits.py's data, views, encoder and budget; a
predictor and a stop-gradient, no negatives and no momentum encoder (< 10 minutes).
"""
import ml_collections

from configs import simclr_digits


def get_config():
  c = simclr_digits.get_config()
  c.objective = "simsiam"
  del c["simclr"]
  c.head.hidden_dim = 128  # the paper's projector: 3 layers of 2048, batch norm on the output
  c.head.out_dim = 128
  c.head.num_layers = 3
  c.simsiam = ml_collections.ConfigDict()
  c.simsiam.predictor_hidden_dim = 32  # the paper's bottleneck: a quarter of out_dim
  return c
