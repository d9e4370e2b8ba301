"""MAE's encoder-decoder: a ViT on the visible patches, and a light ViT decoder that
places mask tokens at the hidden positions and predicts every patch's pixels.

Only the encoder is kept for transfer; its variables sit under "encoder".
"""
import flax.linen as nn
import jax.numpy as jnp

from ssl_jax.models.vit import EncoderBlock


class MAEDecoder(nn.Module):
  num_patches: int
  patch_dim: int  # pixels per patch: p * p * channels
  width: int = 512
  depth: int = 8
  num_heads: int = 16
  mlp_ratio: int = 4
  dtype: jnp.dtype = jnp.float32
  matmul: str = "xla"

  @nn.compact
  def __call__(self, tokens_BxTxD, keep_BxK):
    """tokens: the encoder's output, class token first when it has one (T = K + 1)."""
    B, K = keep_BxK.shape
    x = nn.Dense(self.width, dtype=self.dtype, name="embed")(tokens_BxTxD)
    extra = x.shape[1] - K  # 1 with a class token, else 0
    mask_token = self.param("mask_token", nn.initializers.normal(0.02), (1, 1, self.width))
    full_BxNxW = jnp.broadcast_to(mask_token.astype(x.dtype), (B, self.num_patches, self.width))
    full_BxNxW = full_BxNxW.at[jnp.arange(B)[:, None], keep_BxK].set(x[:, extra:])
    x = jnp.concatenate([x[:, :extra], full_BxNxW], 1)
    pos = self.param("pos_embedding", nn.initializers.normal(0.02),
                     (1, extra + self.num_patches, self.width))
    x = x + pos.astype(x.dtype)
    for i in range(self.depth):
      x = EncoderBlock(self.num_heads, self.mlp_ratio, self.dtype, self.matmul,
                       name=f"block{i}")(x)
    x = nn.LayerNorm(dtype=self.dtype, name="norm")(x)
    return nn.Dense(self.patch_dim, name="pixels")(x[:, extra:]).astype(jnp.float32)


class MAE(nn.Module):
  """(images, keep) -> predicted pixels [B, N, p*p*C] of every patch."""
  encoder: nn.Module  # a ViT
  decoder: MAEDecoder

  def __call__(self, images_BxHxWxC, keep_BxK, train: bool = False):
    tokens = self.encoder(images_BxHxWxC, train=train, keep_BxK=keep_BxK, tokens=True)
    return self.decoder(tokens, keep_BxK)
