"""The classic LSTM next-word model (Zaremba et al. style), tied embeddings.

With `decode=True` the LSTM carries live in the "cache" collection, so generation
uses the same prefill-then-step loop as the GPT.
"""
import flax.linen as nn
import jax.numpy as jnp


class LSTMLanguageModel(nn.Module):
  vocab_size: int
  max_len: int
  num_layers: int = 2
  width: int = 256
  dropout: float = 0.0
  decode: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, tokens_BxT, positions_T=None, pad_mask_BxT=None, train=False,
               return_features=False):
    embed = nn.Embed(self.vocab_size, self.width, embedding_init=nn.initializers.uniform(0.1))
    drop = nn.Dropout(self.dropout, deterministic=not train)
    x_BxTxD = drop(embed(tokens_BxT))
    B = tokens_BxT.shape[0]
    for i in range(self.num_layers):
      layer = nn.RNN(nn.OptimizedLSTMCell(self.width, dtype=self.dtype), return_carry=True,
                     name=f"lstm{i}")
      if self.decode:
        # The carry continues from the previous call and restarts when position 0 is fed.
        zeros = (jnp.zeros((B, self.width), jnp.float32),) * 2
        carry = self.variable("cache", f"carry{i}", lambda: zeros)
        restart = positions_T is not None and positions_T[0] == 0
        init = tuple(jnp.where(restart, 0.0, c) for c in carry.value)
        new_carry, x_BxTxD = layer(x_BxTxD, initial_carry=init)
        if not self.is_initializing():
          carry.value = new_carry
      else:
        _, x_BxTxD = layer(x_BxTxD)
      x_BxTxD = drop(x_BxTxD)
    if return_features:
      return x_BxTxD
    return embed.attend(x_BxTxD).astype(jnp.float32)

  def features(self, tokens_BxT, positions_T=None, pad_mask_BxT=None, train=False):
    return self(tokens_BxT, positions_T, pad_mask_BxT, train, return_features=True)
