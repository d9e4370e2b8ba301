"""MoCo v3 on scikit-learn's digits: simclr_digits.py's data, encoder and budget, with a
momentum encoder, a predictor and InfoNCE over the global batch (2-core CPU, < 10 minutes).
"""
import ml_collections

from configs import simclr_digits


def get_config():
  c = simclr_digits.get_config()
  c.objective = "mocov3"
  del c["simclr"]
  c.augment.preset = "byol"  # MoCo v3 uses BYOL's asymmetric views
  c.head.hidden_dim = 128
  c.head.num_layers = 3  # MoCo v3's 3-layer projector (a batch norm on its output)
  c.mocov3 = ml_collections.ConfigDict()
  c.mocov3.temperature = 0.5  # the paper's 1.0 (ResNet) / 0.2 (ViT) suit its 4096 batch
  c.mocov3.base_momentum = 0.99  # raised to 1 by the shared cosine schedule
  c.mocov3.predictor_hidden_dim = 128
  return c
