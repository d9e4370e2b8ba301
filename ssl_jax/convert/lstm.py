"""The LSTM language model <-> the state_dict of a small torch module (docs/export.md).

transformers has no LSTM language model, so the export is the state_dict of
nn.Embedding("embed") + nn.LSTM("lstm", num_layers, batch_first=True) with the output
projection tied to the embedding; docs/export.md has the dozen lines of that module.
AutoModel cannot load it; config.json says model_type "ssl_jax_lstm" and the sizes.

Flax's OptimizedLSTMCell keeps one (in, width) kernel per gate for the input (no bias) and
one (width, width) kernel plus bias per gate for the hidden state. torch's nn.LSTM stacks
the four gates in the same order (i, f, g, o) as rows of weight_ih (4W, in) and
weight_hh (4W, W), and has two biases that it adds: bias_ih is written as zeros and
bias_hh carries the bias; an import adds the two.
"""
import numpy as np

from ssl_jax.errors import ConfigError

HF_MODEL_TYPES = ("ssl_jax_lstm",)
GATES = ("i", "f", "g", "o")  # flax's and torch's order


def unsupported(model_cfg) -> str | None:
  if model_cfg.get("name") != "lstm":
    return f"model.name={model_cfg.get('name')!r} is not the LSTM language model."
  return None


def notes(model_cfg) -> list[str]:
  del model_cfg
  return ["transformers has no LSTM language model: model.safetensors is the state_dict of "
          "the torch module in docs/export.md (\"The LSTM in PyTorch\"); AutoModel cannot "
          "load it."]


def to_hf(variables: dict, model_cfg, vocab_size: int | None,
          eos_id: int | None = None) -> tuple[dict, dict]:
  p = variables["params"]
  V, W = p["Embed_0"]["embedding"].shape
  if vocab_size is not None and vocab_size != V:
    raise ConfigError(f"vocab_size={vocab_size} but the embedding has {V} rows.")
  L = model_cfg["num_layers"]
  hf_config = {"model_type": "ssl_jax_lstm", "vocab_size": V, "width": W, "num_layers": L,
               "max_len": model_cfg["max_len"]}
  if eos_id is not None:  # the document separator; generation starts a document with it
    hf_config["eos_token_id"] = eos_id
  t = {"embed.weight": p["Embed_0"]["embedding"]}
  for l in range(L):
    cell = p[f"OptimizedLSTMCell_{l}"]
    t[f"lstm.weight_ih_l{l}"] = np.concatenate([cell["i" + g]["kernel"] for g in GATES], 1).T
    t[f"lstm.weight_hh_l{l}"] = np.concatenate([cell["h" + g]["kernel"] for g in GATES], 1).T
    t[f"lstm.bias_ih_l{l}"] = np.zeros(4 * W, np.float32)
    t[f"lstm.bias_hh_l{l}"] = np.concatenate([cell["h" + g]["bias"] for g in GATES])
  return hf_config, {k: np.ascontiguousarray(v, np.float32) for k, v in t.items()}


def from_hf(hf_config: dict, tensors: dict) -> tuple[dict, dict]:
  L = hf_config["num_layers"]
  p = {"Embed_0": {"embedding": tensors["embed.weight"]}}
  for l in range(L):
    w_ih = np.split(tensors[f"lstm.weight_ih_l{l}"], 4)  # [(W, in)] per gate
    w_hh = np.split(tensors[f"lstm.weight_hh_l{l}"], 4)
    bias, bias_ih = tensors[f"lstm.bias_hh_l{l}"], tensors[f"lstm.bias_ih_l{l}"]
    if np.any(bias_ih):  # zeros in ssl_jax's exports; torch adds the two
      bias = bias + bias_ih
    cell = {}
    for g, wi, wh, b in zip(GATES, w_ih, w_hh, np.split(bias, 4)):
      cell["i" + g] = {"kernel": np.ascontiguousarray(wi.T)}
      cell["h" + g] = {"kernel": np.ascontiguousarray(wh.T), "bias": b}
    p[f"OptimizedLSTMCell_{l}"] = cell
  fields = {"name": "lstm", "width": hf_config["width"], "num_layers": L,
            "max_len": hf_config["max_len"]}
  return {"params": p}, fields
