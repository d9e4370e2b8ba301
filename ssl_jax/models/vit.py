"""Vision Transformer (Dosovitskiy et al. 2021) as a feature extractor.

Pre-norm blocks, learned position embeddings, and either a class token or the mean of the
patch tokens as the image representation. No batch norm: model_state stays empty.
"""
import functools

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax.models import layers


class MlpBlock(nn.Module):
  hidden: int
  dtype: jnp.dtype = jnp.float32
  matmul: str = "xla"  # resolved model.matmul (layers.py)

  @nn.compact
  def __call__(self, x_BxNxD):
    D = x_BxNxD.shape[-1]
    dense = functools.partial(layers.dense, matmul=self.matmul, dtype=self.dtype)
    y = nn.gelu(dense(self.hidden)(x_BxNxD))
    return dense(D)(y)


class EncoderBlock(nn.Module):
  num_heads: int
  mlp_ratio: int = 4
  dtype: jnp.dtype = jnp.float32
  matmul: str = "xla"

  @nn.compact
  def __call__(self, x_BxNxD):
    D = x_BxNxD.shape[-1]
    y = nn.LayerNorm(dtype=self.dtype)(x_BxNxD)
    x_BxNxD = x_BxNxD + nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, dtype=self.dtype)(y, y)
    y = nn.LayerNorm(dtype=self.dtype)(x_BxNxD)
    return x_BxNxD + MlpBlock(self.mlp_ratio * D, self.dtype, self.matmul)(y)


class ViT(nn.Module):
  patch_size: int = 16
  depth: int = 12
  width: int = 768
  num_heads: int = 12
  mlp_ratio: int = 4
  pool: str = "cls"  # "cls" (class token) or "mean" (of the patch tokens)
  dtype: jnp.dtype = jnp.float32
  matmul: str = "xla"  # resolved model.matmul (layers.py)

  @property
  def features_dim(self) -> int:
    return self.width

  @nn.compact
  def __call__(self, images_BxHxWxC, train: bool = False):
    del train  # no dropout or batch norm
    p = self.patch_size
    x = nn.Conv(self.width, (p, p), p, padding="VALID", dtype=self.dtype,
                name="patchify")(images_BxHxWxC.astype(self.dtype))
    B, h, w, D = x.shape
    x_BxNxD = x.reshape(B, h * w, D)
    if self.pool == "cls":
      cls_1x1xD = self.param("cls", nn.initializers.zeros, (1, 1, D))
      x_BxNxD = jnp.concatenate([jnp.broadcast_to(cls_1x1xD, (B, 1, D)).astype(x.dtype),
                                 x_BxNxD], 1)
    pos_1xNxD = self.param("pos_embedding", nn.initializers.normal(0.02),
                           (1, x_BxNxD.shape[1], D))
    x_BxNxD = x_BxNxD + pos_1xNxD.astype(x.dtype)
    for i in range(self.depth):
      x_BxNxD = EncoderBlock(self.num_heads, self.mlp_ratio, self.dtype, self.matmul,
                             name=f"block{i}")(x_BxNxD)
    x_BxNxD = nn.LayerNorm(dtype=self.dtype, name="final_norm")(x_BxNxD)
    pooled_BxD = x_BxNxD[:, 0] if self.pool == "cls" else jnp.mean(x_BxNxD, 1)
    return pooled_BxD.astype(jnp.float32)
