"""Transformer blocks shared by GPT (causal) and BERT (bidirectional) models.

Pre-LayerNorm blocks, learned or rotary positions, tied output embedding (BERT may put
a dense-gelu-LayerNorm transform and an output bias before it: `mlm_head`). With
`decode=True` attention keeps a key/value cache in the "cache" collection so that
generation costs one token's work per step.

The attention kernel and the dense products are the resolved `attention` and `matmul`
choices of layers.py (config fields model.attention and model.matmul): cuDNN's fused kernel,
plain XLA (head-major), or XLA split into query blocks that skip the keys above the
diagonal for long causal sequences.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models import layers

_init = nn.initializers.normal(0.02)
_NEG = -1e30  # masked logit; finite so that fully masked rows stay NaN-free
_QUERY_BLOCK = 64  # causal blocking: rows per query block on the XLA path


def rotary(x_BxTxHxK, positions_T):
  """Rotary position embedding on the last axis (pairs of halves)."""
  half = x_BxTxHxK.shape[-1] // 2
  freqs_F = 1.0 / (10000.0 ** (jnp.arange(half, dtype=jnp.float32) / half))
  angles_TxF = positions_T[:, None].astype(jnp.float32) * freqs_F[None, :]
  sin, cos = jnp.sin(angles_TxF)[None, :, None, :], jnp.cos(angles_TxF)[None, :, None, :]
  x1, x2 = jnp.split(x_BxTxHxK.astype(jnp.float32), 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x_BxTxHxK.dtype)


def _softmax_attend(q_BxHxTxK, k_BxHxSxK, v_BxHxSxK, causal_offset=None, mask=None):
  """softmax(q k^T) v with float32 logits; q is already scaled.

  causal_offset: query row t sees keys s <= t + offset (None: no causal mask).
  mask: boolean, broadcastable to BxHxTxS, True = attend.
  """
  logits_BxHxTxS = jnp.einsum("bhtk,bhsk->bhts", q_BxHxTxK, k_BxHxSxK,
                              preferred_element_type=jnp.float32)
  T, S = logits_BxHxTxS.shape[-2:]
  if causal_offset is not None:
    keep_TxS = jnp.arange(T)[:, None] + causal_offset >= jnp.arange(S)[None, :]
    logits_BxHxTxS = jnp.where(keep_TxS, logits_BxHxTxS, _NEG)
  if mask is not None:
    logits_BxHxTxS = jnp.where(mask, logits_BxHxTxS, _NEG)
  probs = jax.nn.softmax(logits_BxHxTxS, axis=-1).astype(v_BxHxSxK.dtype)
  return jnp.einsum("bhts,bhsk->bhtk", probs, v_BxHxSxK)


def _blocked_causal(q_BxHxTxK, k_BxHxTxK, v_BxHxTxK, num_blocks: int):
  """Causal attention as `num_blocks` query blocks; block i reads only keys [0, (i+1)C).

  Skips the work above the diagonal: (n+1)/2n of the full product, 62% for 4 blocks.
  """
  C = q_BxHxTxK.shape[2] // num_blocks
  outs = [_softmax_attend(q_BxHxTxK[:, :, i * C:(i + 1) * C], k_BxHxTxK[:, :, :(i + 1) * C],
                          v_BxHxTxK[:, :, :(i + 1) * C], causal_offset=i * C)
          for i in range(num_blocks)]
  return jnp.concatenate(outs, axis=2)


def attention(q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, *, causal: bool, mask=None, kernel="xla"):
  """Scaled dot-product attention: out_BxTxHxK. mask: boolean Bx1xTxS-broadcastable or None.

  kernel: a resolved layers.ATTENTION_CHOICES entry; where it does not apply, plain XLA.
  """
  T, S, K = q_BxTxHxK.shape[1], k_BxSxHxK.shape[1], q_BxTxHxK.shape[-1]
  fused_ok = mask is None and T == S and q_BxTxHxK.dtype in (jnp.bfloat16, jnp.float16)
  if kernel == "cudnn" and fused_ok:
    return jax.nn.dot_product_attention(q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, is_causal=causal,
                                        implementation="cudnn")
  # XLA path. Heads-major layout so the batched products need no per-block transposes.
  q_BxHxTxK = (q_BxTxHxK * jnp.asarray(K ** -0.5, q_BxTxHxK.dtype)).transpose(0, 2, 1, 3)
  k_BxHxSxK, v_BxHxSxK = k_BxSxHxK.transpose(0, 2, 1, 3), v_BxSxHxK.transpose(0, 2, 1, 3)
  num_blocks = min(T // _QUERY_BLOCK, 8)  # more, smaller blocks cost more than they skip
  blocked = causal and mask is None and T == S and T % _QUERY_BLOCK == 0 and num_blocks > 1
  if blocked and kernel == "blocked":
    out_BxHxTxK = _blocked_causal(q_BxHxTxK, k_BxHxSxK, v_BxHxSxK, num_blocks)
  else:
    out_BxHxTxK = _softmax_attend(q_BxHxTxK, k_BxHxSxK, v_BxHxSxK,
                                  causal_offset=S - T if causal else None, mask=mask)
  return out_BxHxTxK.transpose(0, 2, 1, 3)


class Attention(nn.Module):
  num_heads: int
  causal: bool = True
  rope: bool = False
  decode: bool = False
  dtype: jnp.dtype = jnp.float32
  out_init: nn.initializers.Initializer = _init
  attention_kernel: str = "xla"  # resolved model.attention
  matmul: str = "xla"  # resolved model.matmul

  @nn.compact
  def __call__(self, x_BxTxD, positions_T, pad_mask_BxT=None):
    B, T, D = x_BxTxD.shape
    H = self.num_heads
    # One fused projection for q, k and v.
    qkv = layers.dense_general((3, H, D // H), matmul=self.matmul, dtype=self.dtype,
                               kernel_init=_init, name="qkv")(x_BxTxD)
    q_BxTxHxK, k_BxTxHxK, v_BxTxHxK = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if self.rope:
      q_BxTxHxK, k_BxTxHxK = rotary(q_BxTxHxK, positions_T), rotary(k_BxTxHxK, positions_T)
    mask = None
    causal = self.causal
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
        causal = False
    if pad_mask_BxT is not None:
      mask = pad_mask_BxT[:, None, None, :]
    out_BxTxHxK = attention(q_BxTxHxK, k_BxTxHxK, v_BxTxHxK, causal=causal, mask=mask,
                            kernel=self.attention_kernel)
    return layers.dense_general(D, matmul=self.matmul, axis=(-2, -1), dtype=self.dtype,
                                kernel_init=self.out_init, name="out")(out_BxTxHxK)


class Block(nn.Module):
  num_heads: int
  num_layers: int
  mlp_ratio: int = 4
  dropout: float = 0.0
  causal: bool = True
  rope: bool = False
  decode: bool = False
  dtype: jnp.dtype = jnp.float32
  attention: str = "xla"  # resolved model.attention
  matmul: str = "xla"  # resolved model.matmul
  layer_norm_eps: float = 1e-6

  @nn.compact
  def __call__(self, x_BxTxD, positions_T, pad_mask_BxT=None, train=False):
    D = x_BxTxD.shape[-1]
    # GPT-2: residual projections scaled down with depth.
    out_init = nn.initializers.normal(0.02 / (2 * self.num_layers) ** 0.5)
    drop = nn.Dropout(self.dropout, deterministic=not train)
    h = nn.LayerNorm(epsilon=self.layer_norm_eps, dtype=self.dtype, name="ln_attn")(x_BxTxD)
    h = Attention(self.num_heads, self.causal, self.rope, self.decode, self.dtype, out_init,
                  attention_kernel=self.attention, matmul=self.matmul,
                  name="attn")(h, positions_T, pad_mask_BxT)
    x_BxTxD = x_BxTxD + drop(h)
    h = nn.LayerNorm(epsilon=self.layer_norm_eps, dtype=self.dtype, name="ln_mlp")(x_BxTxD)
    h = layers.dense(self.mlp_ratio * D, matmul=self.matmul, dtype=self.dtype,
                     kernel_init=_init, name="mlp_in")(h)
    h = nn.gelu(h)
    h = layers.dense(D, matmul=self.matmul, dtype=self.dtype, kernel_init=out_init,
                     name="mlp_out")(h)
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
  # "tied": logits = features @ embedding^T. "transform": BERT's masked-LM head, a dense
  # D->D, gelu and LayerNorm before the tied embedding, plus a per-token output bias.
  mlm_head: str = "tied"
  # Resolved backend choices (layers.resolve_backends); plain XLA unless a caller chose.
  attention: str = "xla"
  matmul: str = "xla"
  # Of every LayerNorm. 1e-6 is flax's default; Hugging Face GPT-2 and GPT-NeoX use 1e-5.
  layer_norm_eps: float = 1e-6
  # Of the token embedding at init (GPT-2's 0.02). A contrastive tower trained from scratch
  # needs a larger one: at 0.02 the first Adam steps on the biases outgrow the tokens and
  # every input maps to the same features (tasks/two_tower.py).
  embed_init_std: float = 0.02

  def setup(self):
    # dtype: the tied output projection (the largest matmul at GPT-2's vocabulary) runs in
    # the compute dtype; the table itself stays float32.
    self.embed = nn.Embed(self.vocab_size, self.width, dtype=self.dtype,
                          embedding_init=nn.initializers.normal(self.embed_init_std))
    if self.position == "learned":
      self.pos_embed = self.param("pos_embed", _init, (self.max_len, self.width))
    block = nn.remat(Block, static_argnums=(4,)) if self.remat else Block
    self.blocks = [
        block(self.num_heads, self.num_layers, self.mlp_ratio, self.dropout, self.causal,
              self.position == "rope", self.decode, self.dtype, attention=self.attention,
              matmul=self.matmul, layer_norm_eps=self.layer_norm_eps, name=f"block{i}")
        for i in range(self.num_layers)]
    self.ln_f = nn.LayerNorm(epsilon=self.layer_norm_eps, dtype=self.dtype)
    self.drop = nn.Dropout(self.dropout)
    if self.mlm_head == "transform":
      self.mlm_dense = layers.dense(self.width, matmul=self.matmul, dtype=self.dtype,
                                    kernel_init=_init)
      self.mlm_ln = nn.LayerNorm(epsilon=self.layer_norm_eps, dtype=self.dtype)
      self.mlm_bias = self.param("mlm_bias", nn.initializers.zeros, (self.vocab_size,))

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
    if self.mlm_head == "transform":
      x_BxTxD = self.mlm_ln(nn.gelu(self.mlm_dense(x_BxTxD)))
    logits_BxTxV = self.embed.attend(x_BxTxD.astype(self.dtype)).astype(jnp.float32)
    if self.mlm_head == "transform":
      logits_BxTxV = logits_BxTxV + self.mlm_bias
    return logits_BxTxV

  def __call__(self, tokens_BxT, positions_T=None, pad_mask_BxT=None, train=False):
    return self.logits(self.features(tokens_BxT, positions_T, pad_mask_BxT, train))


def GPT(**kwargs) -> Transformer:
  """Causal decoder: logits_BxTxV = GPT(...).apply(vars, tokens_BxT)."""
  return Transformer(causal=True, **kwargs)
