"""Transformer blocks shared by GPT (causal) and BERT (bidirectional) models.

Pre-LayerNorm blocks, learned or rotary positions, tied output embedding. With
`decode=True` attention keeps a key/value cache in the "cache" collection so that
generation costs one token's work per step.
"""
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

_init = nn.initializers.normal(0.02)


def rotary(x_BxTxHxK, positions_T):
  """Rotary position embedding on the last axis (pairs of halves)."""
  half = x_BxTxHxK.shape[-1] // 2
  freqs_F = 1.0 / (10000.0 ** (jnp.arange(half, dtype=jnp.float32) / half))
  angles_TxF = positions_T[:, None].astype(jnp.float32) * freqs_F[None, :]
  sin, cos = jnp.sin(angles_TxF)[None, :, None, :], jnp.cos(angles_TxF)[None, :, None, :]
  x1, x2 = jnp.split(x_BxTxHxK.astype(jnp.float32), 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x_BxTxHxK.dtype)


class Attention(nn.Module):
  num_heads: int
  causal: bool = True
  rope: bool = False
  decode: bool = False
  dtype: jnp.dtype = jnp.float32
  out_init: nn.initializers.Initializer = _init

  @nn.compact
  def __call__(self, x_BxTxD, positions_T, pad_mask_BxT=None):
    B, T, D = x_BxTxD.shape
    H = self.num_heads
    qkv = nn.DenseGeneral((3, H, D // H), dtype=self.dtype, kernel_init=_init, name="qkv")(x_BxTxD)
    q_BxTxHxK, k_BxTxHxK, v_BxTxHxK = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if self.rope:
      q_BxTxHxK, k_BxTxHxK = rotary(q_BxTxHxK, positions_T), rotary(k_BxTxHxK, positions_T)
    mask = None
    is_causal = self.causal
    if self.decode:
      # At init the input has the full context length, which sizes the cache.
      cached_k = self.variable("cache", "k", jnp.zeros, k_BxTxHxK.shape, k_BxTxHxK.dtype)
      cached_v = self.variable("cache", "v", jnp.zeros, v_BxTxHxK.shape, v_BxTxHxK.dtype)
      if not self.is_initializing():
        start = positions_T[0]
        cached_k.value = jax.lax.dynamic_update_slice(cached_k.value, k_BxTxHxK, (0, start, 0, 0))
        cached_v.value = jax.lax.dynamic_update_slice(cached_v.value, v_BxTxHxK, (0, start, 0, 0))
        k_BxTxHxK, v_BxTxHxK = cached_k.value, cached_v.value
        S = k_BxTxHxK.shape[1]
        mask = (jnp.arange(S)[None, :] <= positions_T[:, None])[None, None]  # 1x1xTxS
        is_causal = False
    if pad_mask_BxT is not None:
      mask = pad_mask_BxT[:, None, None, :]
    out_BxTxHxK = jax.nn.dot_product_attention(
        q_BxTxHxK, k_BxTxHxK, v_BxTxHxK, mask=mask, is_causal=is_causal)
    return nn.DenseGeneral(D, axis=(-2, -1), dtype=self.dtype, kernel_init=self.out_init,
                           name="out")(out_BxTxHxK)


class Block(nn.Module):
  num_heads: int
  num_layers: int
  mlp_ratio: int = 4
  dropout: float = 0.0
  causal: bool = True
  rope: bool = False
  decode: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxTxD, positions_T, pad_mask_BxT=None, train=False):
    D = x_BxTxD.shape[-1]
    # GPT-2: residual projections scaled down with depth.
    out_init = nn.initializers.normal(0.02 / (2 * self.num_layers) ** 0.5)
    drop = nn.Dropout(self.dropout, deterministic=not train)
    h = nn.LayerNorm(dtype=self.dtype, name="ln_attn")(x_BxTxD)
    h = Attention(self.num_heads, self.causal, self.rope, self.decode, self.dtype, out_init,
                  name="attn")(h, positions_T, pad_mask_BxT)
    x_BxTxD = x_BxTxD + drop(h)
    h = nn.LayerNorm(dtype=self.dtype, name="ln_mlp")(x_BxTxD)
    h = nn.Dense(self.mlp_ratio * D, dtype=self.dtype, kernel_init=_init, name="mlp_in")(h)
    h = nn.gelu(h)
    h = nn.Dense(D, dtype=self.dtype, kernel_init=out_init, name="mlp_out")(h)
    return x_BxTxD + drop(h)


class Transformer(nn.Module):
  """Token embedding, a stack of blocks and a final LayerNorm: features_BxTxD."""
  vocab_size: int
  max_len: int
  num_layers: int = 4
  num_heads: int = 4
  width: int = 256
  mlp_ratio: int = 4
  dropout: float = 0.0
  position: str = "learned"  # or "rope"
  causal: bool = True
  decode: bool = False
  remat: bool = False
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.embed = nn.Embed(self.vocab_size, self.width, embedding_init=_init)
    if self.position == "learned":
      self.pos_embed = self.param("pos_embed", _init, (self.max_len, self.width))
    block = nn.remat(Block, static_argnums=(4,)) if self.remat else Block
    self.blocks = [
        block(self.num_heads, self.num_layers, self.mlp_ratio, self.dropout, self.causal,
              self.position == "rope", self.decode, self.dtype, name=f"block{i}")
        for i in range(self.num_layers)]
    self.ln_f = nn.LayerNorm(dtype=self.dtype)
    self.drop = nn.Dropout(self.dropout)

  def features(self, tokens_BxT, positions_T=None, pad_mask_BxT=None, train=False):
    T = tokens_BxT.shape[1]
    if positions_T is None:
      positions_T = jnp.arange(T)
    x_BxTxD = self.embed(tokens_BxT)
    if self.position == "learned":
      x_BxTxD = x_BxTxD + jnp.take(self.pos_embed, positions_T, axis=0)[None]
    x_BxTxD = self.drop(x_BxTxD.astype(self.dtype), deterministic=not train)
    for block in self.blocks:
      x_BxTxD = block(x_BxTxD, positions_T, pad_mask_BxT, train)
    return self.ln_f(x_BxTxD)

  def logits(self, x_BxTxD):
    return self.embed.attend(x_BxTxD.astype(self.dtype)).astype(jnp.float32)

  def __call__(self, tokens_BxT, positions_T=None, pad_mask_BxT=None, train=False):
    return self.logits(self.features(tokens_BxT, positions_T, pad_mask_BxT, train))


def GPT(**kwargs) -> Transformer:
  """Causal decoder: logits_BxTxV = GPT(...).apply(vars, tokens_BxT)."""
  return Transformer(causal=True, **kwargs)
