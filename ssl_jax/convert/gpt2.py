"""GPT with learned positions <-> transformers' GPT2LMHeadModel.

The two compute the same function: pre-LayerNorm blocks, learned absolute positions from
0, tanh-approximated GELU ("gelu_new", flax's nn.gelu default), the output projection tied
to the token embedding. LayerNorm epsilon is model.layer_norm_eps both ways (GPT-2's own
1e-5 imports as it is). GPT-2's Conv1D stores weights as (in, out), as Flax does, so only
the fused projections are reshaped: ssl_jax's qkv kernel (D, 3, H, K) flattens to c_attn's
(D, 3D) whose columns are [q heads | k heads | v heads], and the attention output kernel
(H, K, D) to c_proj's (D, D).

bos_token_id and eos_token_id are both the tokenizer's eos id: ssl_jax separates documents
with it, and generation starts a new document with it.
"""
import numpy as np

from ssl_jax.convert.common import GELU_TANH, LAYER_NORM_EPS, block_sizes, embedding_shape
from ssl_jax.errors import ConfigError

HF_MODEL_TYPES = ("gpt2",)
HF_LAYER_NORM_EPS = 1e-5  # GPT2Config's default, where config.json leaves it out


def unsupported(model_cfg) -> str | None:
  if model_cfg.get("name") != "gpt":
    return f"model.name={model_cfg.get('name')!r} is not a GPT; GPT2LMHeadModel is a decoder."
  if model_cfg.get("position", "learned") != "learned":
    return (f"model.position={model_cfg.get('position')!r}: GPT2LMHeadModel adds learned "
            "absolute positions (rotary GPTs map to GPTNeoXForCausalLM).")
  return None


def to_hf(variables: dict, model_cfg, vocab_size: int | None,
          eos_id: int | None = None) -> tuple[dict, dict]:
  p = variables["params"]
  V, D = embedding_shape(p, vocab_size)
  L, H, dropout = block_sizes(model_cfg)
  hf_config = {
      "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
      "vocab_size": V, "n_positions": p["pos_embed"].shape[0], "n_embd": D, "n_layer": L,
      "n_head": H, "n_inner": p["block0"]["mlp_in"]["kernel"].shape[1],
      "activation_function": "gelu_new",
      "layer_norm_epsilon": float(model_cfg.get("layer_norm_eps", LAYER_NORM_EPS)),
      "tie_word_embeddings": True,
      # ssl_jax drops the embedding sum and each residual branch; never attention weights.
      "embd_pdrop": dropout, "resid_pdrop": dropout, "attn_pdrop": 0.0,
      "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
      "reorder_and_upcast_attn": False,
      # GPT-2's own 50256 is not in a small vocabulary; None where no tokenizer is known.
      "bos_token_id": eos_id, "eos_token_id": eos_id, "pad_token_id": None,
  }
  t = {"transformer.wte.weight": p["embed"]["embedding"],
       "transformer.wpe.weight": p["pos_embed"]}
  for i in range(L):
    b, h = p[f"block{i}"], f"transformer.h.{i}."
    t[h + "ln_1.weight"], t[h + "ln_1.bias"] = b["ln_attn"]["scale"], b["ln_attn"]["bias"]
    t[h + "attn.c_attn.weight"] = b["attn"]["qkv"]["kernel"].reshape(D, 3 * D)
    t[h + "attn.c_attn.bias"] = b["attn"]["qkv"]["bias"].reshape(3 * D)
    t[h + "attn.c_proj.weight"] = b["attn"]["out"]["kernel"].reshape(D, D)
    t[h + "attn.c_proj.bias"] = b["attn"]["out"]["bias"]
    t[h + "ln_2.weight"], t[h + "ln_2.bias"] = b["ln_mlp"]["scale"], b["ln_mlp"]["bias"]
    t[h + "mlp.c_fc.weight"], t[h + "mlp.c_fc.bias"] = b["mlp_in"]["kernel"], b["mlp_in"]["bias"]
    t[h + "mlp.c_proj.weight"] = b["mlp_out"]["kernel"]
    t[h + "mlp.c_proj.bias"] = b["mlp_out"]["bias"]
  t["transformer.ln_f.weight"], t["transformer.ln_f.bias"] = p["ln_f"]["scale"], p["ln_f"]["bias"]
  return hf_config, {k: np.asarray(v, np.float32) for k, v in t.items()}


def _check(hf_config: dict):
  """ConfigError naming every setting that computes something ssl_jax's GPT does not."""
  c = hf_config
  bad = []
  if c.get("activation_function", "gelu_new") not in GELU_TANH:
    bad.append(f"activation_function={c['activation_function']!r} (ssl_jax: tanh GELU)")
  eps = c.get("layer_norm_epsilon", HF_LAYER_NORM_EPS)
  if not _positive(eps):
    bad.append(f"layer_norm_epsilon={eps!r} (not a positive number)")
  if not c.get("scale_attn_weights", True) or c.get("scale_attn_by_inverse_layer_idx", False):
    bad.append("attention scores not scaled by 1/sqrt(head size) alone")
  if not c.get("tie_word_embeddings", True):
    bad.append("tie_word_embeddings=False (ssl_jax ties the output projection)")
  if c.get("add_cross_attention", False):
    bad.append("add_cross_attention=True")
  if bad:
    raise ConfigError("This GPT-2 differs from ssl_jax's GPT: " + "; ".join(bad) + ".")


def _positive(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < float("inf")


def from_hf(hf_config: dict, tensors: dict) -> tuple[dict, dict]:
  _check(hf_config)
  t = {k.removeprefix("transformer."): v for k, v in tensors.items()}
  D, L, H = hf_config["n_embd"], hf_config["n_layer"], hf_config["n_head"]
  K = D // H
  inner = hf_config.get("n_inner") or 4 * D
  if inner % D:
    raise ConfigError(f"n_inner={inner} is not a multiple of n_embd={D} (model.mlp_ratio).")
  p = {"embed": {"embedding": t["wte.weight"]}, "pos_embed": t["wpe.weight"],
       "ln_f": {"scale": t["ln_f.weight"], "bias": t["ln_f.bias"]}}
  for i in range(L):
    h = f"h.{i}."
    p[f"block{i}"] = {
        "ln_attn": {"scale": t[h + "ln_1.weight"], "bias": t[h + "ln_1.bias"]},
        "attn": {"qkv": {"kernel": t[h + "attn.c_attn.weight"].reshape(D, 3, H, K),
                         "bias": t[h + "attn.c_attn.bias"].reshape(3, H, K)},
                 "out": {"kernel": t[h + "attn.c_proj.weight"].reshape(H, K, D),
                         "bias": t[h + "attn.c_proj.bias"]}},
        "ln_mlp": {"scale": t[h + "ln_2.weight"], "bias": t[h + "ln_2.bias"]},
        "mlp_in": {"kernel": t[h + "mlp.c_fc.weight"], "bias": t[h + "mlp.c_fc.bias"]},
        "mlp_out": {"kernel": t[h + "mlp.c_proj.weight"], "bias": t[h + "mlp.c_proj.bias"]},
    }
  fields = {"name": "gpt", "position": "learned", "width": D, "num_layers": L, "num_heads": H,
            "mlp_ratio": inner // D, "max_len": hf_config["n_positions"],
            "layer_norm_eps": float(hf_config.get("layer_norm_epsilon", HF_LAYER_NORM_EPS))}
  return {"params": p}, fields
