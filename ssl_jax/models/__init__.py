"""Flax linen models, used only through init/apply."""
import jax.numpy as jnp

from ssl_jax.errors import ConfigError


def language_model(cfg, vocab_size: int, decode: bool = False, platform: str | None = None):
  """The language model config.model names: "gpt" (decoder), "bert" (bidirectional encoder
  sharing the GPT blocks) or "lstm" (the classic baseline).

  platform: of the devices the model runs on (default: the run's), which resolves
  model.attention and model.matmul "auto" (layers.resolve_backends).
  """
  dtype = jnp.dtype(cfg.dtype)
  if cfg.name in ("gpt", "bert"):
    from ssl_jax.models import layers
    from ssl_jax.models.gpt import Transformer
    return Transformer(causal=cfg.name == "gpt", vocab_size=vocab_size, max_len=cfg.max_len,
                       num_layers=cfg.num_layers, num_heads=cfg.num_heads, width=cfg.width,
                       mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout, position=cfg.position,
                       decode=decode, remat=cfg.remat, dtype=dtype,
                       mlm_head=cfg.get("mlm_head", "tied"),
                       layer_norm_eps=cfg.get("layer_norm_eps", 1e-6),
                       embed_init_std=cfg.get("embed_init_std", 0.02),
                       **layers.resolve_backends(cfg, platform))
  if cfg.name == "lstm":
    from ssl_jax.models.lstm import LSTMLanguageModel
    return LSTMLanguageModel(vocab_size=vocab_size, max_len=cfg.max_len,
                             num_layers=cfg.num_layers, width=cfg.width, dropout=cfg.dropout,
                             decode=decode, dtype=dtype)
  raise ConfigError(f"model.name must be 'gpt', 'bert' or 'lstm', got {cfg.name!r}.")
