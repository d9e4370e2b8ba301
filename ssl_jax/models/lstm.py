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

  def setup(self):
    self.embed = nn.Embed(self.vocab_size, self.width,
                          embedding_init=nn.initializers.uniform(0.1))
    self.layers = [nn.RNN(nn.OptimizedLSTMCell(self.width, dtype=self.dtype), return_carry=True,
                          name=f"lstm{i}") for i in range(self.num_layers)]
    self.drop = nn.Dropout(self.dropout)

  def features(self, tokens_BxT, positions_T=None, pad_mask_BxT=None, train=False):
    x_BxTxD = self.drop(self.embed(tokens_BxT), deterministic=not train)
    B = tokens_BxT.shape[0]
    for i, layer in enumerate(self.layers):
      zeros = (jnp.zeros((B, self.width), jnp.float32),) * 2
      if self.decode:
        # The carry continues from the previous call; it restarts when position 0 is fed.
        carry = self.variable("cache", f"carry{i}", lambda: zeros)
        init = carry.value
        if positions_T is not None:
          init = jnp.where(positions_T[0] == 0, 0.0, jnp.stack(init))
          init = (init[0], init[1])
        new_carry, x_BxTxD = layer(x_BxTxD, initial_carry=init)
        if not self.is_initializing():
          carry.value = new_carry
      else:
        _, x_BxTxD = layer(x_BxTxD)
      x_BxTxD = self.drop(x_BxTxD, deterministic=not train)
    return x_BxTxD

  def logits(self, x_BxTxD):
    return self.embed.attend(x_BxTxD).astype(jnp.float32)

  def __call__(self, tokens_BxT, positions_T=None, pad_mask_BxT=None, train=False):
    return self.logits(self.features(tokens_BxT, positions_T, pad_mask_BxT, train))
