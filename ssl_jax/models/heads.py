"""Heads on top of an encoder: the MLP projectors and predictors of the joint-embedding
methods, DINO's prototype head, and encoder + head."""
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp


class ProjectionHead(nn.Module):
  """(Dense -> BN -> ReLU) x (num_layers - 1) -> Dense, as in SimCLR v1 / BYOL; `out_norm`
  adds a batch norm without scale and shift on the output (MoCo v3, SimSiam)."""
  hidden_dim: int
  out_dim: int
  num_layers: int = 2
  bn_axis_name: Optional[str] = None
  out_norm: bool = False

  @nn.compact
  def __call__(self, h_BxD, train: bool = False):
    x = h_BxD
    for i in range(self.num_layers - 1):
      x = nn.Dense(self.hidden_dim, use_bias=False, name=f"hidden{i}")(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                       axis_name=self.bn_axis_name, name=f"norm{i}")(x)
      x = nn.relu(x)
    x = nn.Dense(self.out_dim, use_bias=not self.out_norm, name="out")(x)
    if self.out_norm:
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, use_scale=False,
                       use_bias=False, axis_name=self.bn_axis_name, name="out_norm")(x)
    return x


class DINOHead(nn.Module):
  """MLP (GELU) to a bottleneck, L2-normalised, then a weight-normalised linear layer onto
  `num_prototypes` logits whose columns have unit norm (DINO's norm_last_layer)."""
  hidden_dim: int
  bottleneck_dim: int
  num_prototypes: int
  num_layers: int = 3

  @nn.compact
  def __call__(self, h_BxD, train: bool = False):
    del train
    x = h_BxD
    for i in range(self.num_layers - 1):
      x = nn.gelu(nn.Dense(self.hidden_dim, name=f"hidden{i}")(x))
    x = nn.Dense(self.bottleneck_dim, name="bottleneck")(x)
    x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    v_DxK = self.param("prototypes", nn.initializers.lecun_normal(),
                       (self.bottleneck_dim, self.num_prototypes))
    return x @ (v_DxK / jnp.maximum(jnp.linalg.norm(v_DxK, axis=0, keepdims=True), 1e-12))


class EncoderWithHead(nn.Module):
  """Returns (features h, projection z). Its variables are {"encoder": ..., "head": ...} in
  every collection, so the encoder alone can be taken out for transfer."""
  encoder: nn.Module
  head: nn.Module

  def __call__(self, images, train: bool = False):
    h_BxD = self.encoder(images, train=train)
    return h_BxD, self.head(h_BxD, train=train)
