"""Heads on top of an encoder: the MLP projector of SimCLR/BYOL, and encoder + head."""
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp


class ProjectionHead(nn.Module):
  """(Dense -> BN -> ReLU) x (num_layers - 1) -> Dense, as in SimCLR v1 / BYOL."""
  hidden_dim: int
  out_dim: int
  num_layers: int = 2
  bn_axis_name: Optional[str] = None

  @nn.compact
  def __call__(self, h_BxD, train: bool = False):
    x = h_BxD
    for i in range(self.num_layers - 1):
      x = nn.Dense(self.hidden_dim, use_bias=False, name=f"hidden{i}")(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                       axis_name=self.bn_axis_name, name=f"norm{i}")(x)
      x = nn.relu(x)
    return nn.Dense(self.out_dim, name="out")(x)


class EncoderWithHead(nn.Module):
  """Returns (features h, projection z). Its variables are {"encoder": ..., "head": ...} in
  every collection, so the encoder alone can be taken out for transfer."""
  encoder: nn.Module
  head: nn.Module

  def __call__(self, images, train: bool = False):
    h_BxD = self.encoder(images, train=train)
    return h_BxD, self.head(h_BxD, train=train)
