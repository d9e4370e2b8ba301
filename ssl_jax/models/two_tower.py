"""Two towers and their projections into one embedding space (CLIP, SigLIP).

variables    {"text": {"encoder": Transformer}, "pair": {"encoder": Transformer, ViT or
             ResNet} (absent when shared), "text_proj", "pair_proj", "log_scale", "bias"}

The text tower is a Transformer (GPT or BERT blocks) averaged over its real tokens; the
pair tower is a second Transformer, the same one (`pair=None`: shared weights, own
projection), or an image encoder. The learned temperature (and SigLIP's bias) live here
as scalar parameters, so the optimizer trains them with the towers. Inputs: token ids
with -1 as padding, or images in [-1, 1].
"""
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp


class Tower(nn.Module):
  """features_BxD of one side: a Transformer's mean over real tokens, or an image
  encoder's features. Its encoder's variables sit under "encoder"."""
  encoder: nn.Module
  text: bool = True

  def __call__(self, inputs, train: bool = False):
    if not self.text:
      return self.encoder(inputs, train=train)
    valid_BxT = inputs >= 0
    ids_BxT = jnp.where(valid_BxT, inputs, 0)
    # A causal model never looks ahead, so trailing padding needs no mask.
    pad_mask = None if self.encoder.causal else valid_BxT
    x_BxTxD = self.encoder.features(ids_BxT, pad_mask_BxT=pad_mask, train=train)
    w_BxT = valid_BxT.astype(jnp.float32)
    return (x_BxTxD.astype(jnp.float32) * w_BxT[..., None]).sum(1) / jnp.maximum(
        w_BxT.sum(1, keepdims=True), 1.0)


class TwoTower(nn.Module):
  text: Tower
  pair: Optional[Tower]  # None: the pair side goes through the text tower
  embed_dim: int
  init_log_scale: float
  init_bias: Optional[float] = None  # SigLIP's learned bias; None: no bias (CLIP)

  def setup(self):
    self.text_proj = nn.Dense(self.embed_dim, use_bias=False)
    self.pair_proj = nn.Dense(self.embed_dim, use_bias=False)
    self.log_scale = self.param("log_scale", nn.initializers.constant(self.init_log_scale), ())
    if self.init_bias is not None:
      self.bias = self.param("bias", nn.initializers.constant(self.init_bias), ())

  def embed_text(self, tokens_BxT, train: bool = False):
    return self.text_proj(self.text(tokens_BxT, train=train))

  def embed_pair(self, inputs, train: bool = False):
    tower = self.text if self.pair is None else self.pair
    return self.pair_proj(tower(inputs, train=train))

  def temperature(self):
    """(log_scale, bias or None): the loss's learned parameters."""
    return self.log_scale, (self.bias if self.init_bias is not None else None)

  def __call__(self, tokens_BxT, pair_inputs, train: bool = False):
    """(text embeddings, pair embeddings, log_scale, bias or None); unnormalised."""
    return (self.embed_text(tokens_BxT, train), self.embed_pair(pair_inputs, train),
            *self.temperature())
