"""Vision Transformer (Dosovitskiy et al. 2021) as a feature extractor.

Pre-norm blocks, learned position embeddings, and either a class token or the mean of the
patch tokens as the image representation. No batch norm: model_state stays empty.
"""
import functools

import flax.linen as nn
import jax
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


# Size presets (depth, width, heads) of Dosovitskiy et al. and Touvron et al. (DeiT);
# model.size names one, and model.depth / width / num_heads > 0 override its entries.
SIZES = {"tiny": (12, 192, 3), "small": (12, 384, 6), "base": (12, 768, 12),
         "large": (24, 1024, 16)}


class ViT(nn.Module):
  patch_size: int = 16
  depth: int = 12
  width: int = 768
  num_heads: int = 12
  mlp_ratio: int = 4
  pool: str = "cls"  # "cls" (class token) or "mean" (of the patch tokens)
  dtype: jnp.dtype = jnp.float32
  matmul: str = "xla"  # resolved model.matmul (layers.py)
  # Side of the learned position grid; 0: the input's. Inputs of another size (multi-crop's
  # small crops) use the grid resized to theirs.
  pos_grid: int = 0

  @property
  def features_dim(self) -> int:
    return self.width

  @nn.compact
  def __call__(self, images_BxHxWxC, train: bool = False, keep_BxK=None, tokens: bool = False):
    """Pooled features [B, D]; with `tokens`, the final tokens [B, (1 +) K, D] (class token
    first when pool="cls"). keep_BxK: indices of the patches to encode (MAE); the others
    are dropped before the first block, so masked patches cost nothing."""
    del train  # no dropout or batch norm
    p = self.patch_size
    x = nn.Conv(self.width, (p, p), p, padding="VALID", dtype=self.dtype,
                name="patchify")(images_BxHxWxC.astype(self.dtype))
    B, h, w, D = x.shape
    x_BxNxD = x.reshape(B, h * w, D)
    has_cls = self.pool == "cls"
    if has_cls:
      cls_1x1xD = self.param("cls", nn.initializers.zeros, (1, 1, D))
    grid = self.pos_grid or h
    pos_1xMxD = self.param("pos_embedding", nn.initializers.normal(0.02),
                           (1, int(has_cls) + grid * grid, D))
    patch_pos_GxGxD = pos_1xMxD[0, int(has_cls):].reshape(grid, grid, D)
    if (grid, grid) != (h, w):
      patch_pos_GxGxD = jax.image.resize(patch_pos_GxGxD, (h, w, D), "bicubic")
    x_BxNxD = x_BxNxD + patch_pos_GxGxD.reshape(1, h * w, D).astype(x.dtype)
    if keep_BxK is not None:
      x_BxNxD = jnp.take_along_axis(x_BxNxD, keep_BxK[..., None], axis=1)
    if has_cls:
      cls_1x1xD = cls_1x1xD.astype(x.dtype) + pos_1xMxD[:, :1].astype(x.dtype)
      x_BxNxD = jnp.concatenate([jnp.broadcast_to(cls_1x1xD, (B, 1, D)), x_BxNxD], 1)
    for i in range(self.depth):
      x_BxNxD = EncoderBlock(self.num_heads, self.mlp_ratio, self.dtype, self.matmul,
                             name=f"block{i}")(x_BxNxD)
    x_BxNxD = nn.LayerNorm(dtype=self.dtype, name="final_norm")(x_BxNxD)
    if tokens:
      return x_BxNxD
    pooled_BxD = x_BxNxD[:, 0] if has_cls else jnp.mean(x_BxNxD, 1)
    return pooled_BxD.astype(jnp.float32)
