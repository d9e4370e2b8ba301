"""What the language-model converters share: ssl_jax's defaults and the embedding checks."""
from ssl_jax.errors import ConfigError

LAYER_NORM_EPS = 1e-6  # model.layer_norm_eps's default (flax nn.LayerNorm's)
GELU_TANH = ("gelu_new", "gelu_pytorch_tanh")  # flax nn.gelu's default, the tanh form


def embedding_shape(params: dict, vocab_size: int | None) -> tuple[int, int]:
  """(V, D) of the token embedding; ConfigError if the run's vocabulary says otherwise."""
  V, D = params["embed"]["embedding"].shape
  if vocab_size is not None and vocab_size != V:
    raise ConfigError(f"vocab_size={vocab_size} but the embedding has {V} rows.")
  return V, D


def block_sizes(model_cfg) -> tuple[int, int, float]:
  """(layers, heads, dropout) of a Transformer config."""
  return (model_cfg["num_layers"], model_cfg["num_heads"],
          float(model_cfg.get("dropout", 0.0)))
