"""GPT with rotary positions <-> transformers' GPTNeoXForCausalLM, sequential residual.

With use_parallel_residual=False a GPT-NeoX layer is ssl_jax's block: x + attn(ln(x)), then
that + mlp(ln(.)). Rotary: both rotate the first and second halves of each head as pairs
(x1 cos - x2 sin, x2 cos + x1 sin) at frequencies 1 / 10000^(i / half), i < half, over the
whole head (partial_rotary_factor 1.0), and tie the output projection to the embedding.
LayerNorm epsilon is model.layer_norm_eps both ways (GPT-NeoX's own 1e-5 imports as it is).

The layouts differ in query_key_value: its 3D outputs are grouped by head, [q_h k_h v_h]
for h = 0..H-1 (GPT-NeoX views them as (H, 3K) before splitting q, k and v), where ssl_jax's
qkv kernel is (D, 3, H, K). torch Linear weights are (out, in), Flax kernels (in, out).

bos_token_id and eos_token_id are both the tokenizer's eos id: ssl_jax separates documents
with it, and generation starts a new document with it.
"""
import numpy as np

from ssl_jax.convert.common import GELU_TANH, LAYER_NORM_EPS, block_sizes, embedding_shape
from ssl_jax.errors import ConfigError

HF_MODEL_TYPES = ("gpt_neox",)
HF_LAYER_NORM_EPS = 1e-5  # GPTNeoXConfig's default, where config.json leaves it out
ROPE_THETA = 10000.0


def unsupported(model_cfg) -> str | None:
  if model_cfg.get("name") != "gpt":
    return f"model.name={model_cfg.get('name')!r} is not a GPT; GPTNeoXForCausalLM is a decoder."
  if model_cfg.get("position", "learned") != "rope":
    return (f"model.position={model_cfg.get('position', 'learned')!r}: GPTNeoXForCausalLM has "
            "rotary positions only (learned-position GPTs map to GPT2LMHeadModel).")
  return None


def to_hf(variables: dict, model_cfg, vocab_size: int | None,
          eos_id: int | None = None) -> tuple[dict, dict]:
  p = variables["params"]
  V, D = embedding_shape(p, vocab_size)
  L, H, dropout = block_sizes(model_cfg)
  hf_config = {
      "model_type": "gpt_neox", "architectures": ["GPTNeoXForCausalLM"],
      "vocab_size": V, "hidden_size": D, "num_hidden_layers": L, "num_attention_heads": H,
      "intermediate_size": p["block0"]["mlp_in"]["kernel"].shape[1], "hidden_act": "gelu_new",
      "max_position_embeddings": model_cfg["max_len"],
      "layer_norm_eps": float(model_cfg.get("layer_norm_eps", LAYER_NORM_EPS)),
      "use_parallel_residual": False, "attention_bias": True, "tie_word_embeddings": True,
      "rope_parameters": {"rope_type": "default", "rope_theta": ROPE_THETA,
                          "partial_rotary_factor": 1.0},
      # ssl_jax drops the embedding and each residual branch; never attention weights.
      "hidden_dropout": dropout, "attention_dropout": 0.0,
      # None where no tokenizer is known: GPT-NeoX's defaults (0, 2) would be guesses.
      "bos_token_id": eos_id, "eos_token_id": eos_id, "pad_token_id": None,
  }
  t = {"gpt_neox.embed_in.weight": p["embed"]["embedding"]}
  for i in range(L):
    b, h = p[f"block{i}"], f"gpt_neox.layers.{i}."
    t[h + "input_layernorm.weight"] = b["ln_attn"]["scale"]
    t[h + "input_layernorm.bias"] = b["ln_attn"]["bias"]
    # (D, 3, H, K) -> (D, H, 3, K): each head's q, k, v adjacent, then (out, in).
    qkv = np.asarray(b["attn"]["qkv"]["kernel"]).transpose(0, 2, 1, 3).reshape(D, 3 * D)
    t[h + "attention.query_key_value.weight"] = qkv.T
    t[h + "attention.query_key_value.bias"] = (
        np.asarray(b["attn"]["qkv"]["bias"]).transpose(1, 0, 2).reshape(3 * D))
    t[h + "attention.dense.weight"] = np.asarray(b["attn"]["out"]["kernel"]).reshape(D, D).T
    t[h + "attention.dense.bias"] = b["attn"]["out"]["bias"]
    t[h + "post_attention_layernorm.weight"] = b["ln_mlp"]["scale"]
    t[h + "post_attention_layernorm.bias"] = b["ln_mlp"]["bias"]
    t[h + "mlp.dense_h_to_4h.weight"] = np.asarray(b["mlp_in"]["kernel"]).T
    t[h + "mlp.dense_h_to_4h.bias"] = b["mlp_in"]["bias"]
    t[h + "mlp.dense_4h_to_h.weight"] = np.asarray(b["mlp_out"]["kernel"]).T
    t[h + "mlp.dense_4h_to_h.bias"] = b["mlp_out"]["bias"]
  t["gpt_neox.final_layer_norm.weight"] = p["ln_f"]["scale"]
  t["gpt_neox.final_layer_norm.bias"] = p["ln_f"]["bias"]
  return hf_config, {k: np.ascontiguousarray(v, np.float32) for k, v in t.items()}


def _rope(hf_config: dict) -> tuple[float, float, str]:
  """(theta, rotary fraction, rope type) from rope_parameters, or from the older
  rotary_emb_base / rotary_pct keys of config.json files written before it."""
  rope = hf_config.get("rope_parameters") or hf_config.get("rope_scaling") or {}
  theta = rope.get("rope_theta", hf_config.get("rotary_emb_base", ROPE_THETA))
  pct = rope.get("partial_rotary_factor", hf_config.get("rotary_pct", 0.25))
  kind = rope.get("rope_type", rope.get("type", "default"))
  return float(theta), float(pct), kind


def _check(hf_config: dict):
  """ConfigError naming every setting that computes something ssl_jax's GPT does not."""
  c = hf_config
  theta, pct, kind = _rope(c)
  bad = []
  if c.get("use_parallel_residual", True):
    bad.append("use_parallel_residual=True (ssl_jax's blocks are sequential)")
  if pct != 1.0:
    bad.append(f"rotary on {pct:g} of each head (ssl_jax rotates all of it)")
  if theta != ROPE_THETA or kind != "default":
    bad.append(f"rope {kind!r} with theta {theta:g} (ssl_jax: default, theta 10000)")
  if c.get("hidden_act", "gelu") not in GELU_TANH:
    bad.append(f"hidden_act={c.get('hidden_act', 'gelu')!r} (ssl_jax: tanh GELU)")
  eps = c.get("layer_norm_eps", HF_LAYER_NORM_EPS)
  if not _positive(eps):
    bad.append(f"layer_norm_eps={eps!r} (not a positive number)")
  if not c.get("attention_bias", True):
    bad.append("attention_bias=False")
  if not c.get("tie_word_embeddings", False):
    bad.append("tie_word_embeddings=False (ssl_jax ties the output projection)")
  if bad:
    raise ConfigError("This GPT-NeoX differs from ssl_jax's GPT: " + "; ".join(bad) + ".")


def _positive(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < float("inf")


def from_hf(hf_config: dict, tensors: dict) -> tuple[dict, dict]:
  _check(hf_config)
  t = {k.removeprefix("gpt_neox."): v for k, v in tensors.items()}
  D, L = hf_config["hidden_size"], hf_config["num_hidden_layers"]
  H = hf_config["num_attention_heads"]
  K = D // H
  inner = hf_config["intermediate_size"]
  if inner % D:
    raise ConfigError(f"intermediate_size={inner} is not a multiple of hidden_size={D} "
                      "(model.mlp_ratio).")
  p = {"embed": {"embedding": t["embed_in.weight"]},
       "ln_f": {"scale": t["final_layer_norm.weight"], "bias": t["final_layer_norm.bias"]}}
  for i in range(L):
    h = f"layers.{i}."
    qkv = t[h + "attention.query_key_value.weight"].T.reshape(D, H, 3, K).transpose(0, 2, 1, 3)
    qkv_bias = t[h + "attention.query_key_value.bias"].reshape(H, 3, K).transpose(1, 0, 2)
    p[f"block{i}"] = {
        "ln_attn": {"scale": t[h + "input_layernorm.weight"],
                    "bias": t[h + "input_layernorm.bias"]},
        "attn": {"qkv": {"kernel": np.ascontiguousarray(qkv),
                         "bias": np.ascontiguousarray(qkv_bias)},
                 "out": {"kernel": np.ascontiguousarray(
                             t[h + "attention.dense.weight"].T.reshape(H, K, D)),
                         "bias": t[h + "attention.dense.bias"]}},
        "ln_mlp": {"scale": t[h + "post_attention_layernorm.weight"],
                   "bias": t[h + "post_attention_layernorm.bias"]},
        "mlp_in": {"kernel": np.ascontiguousarray(t[h + "mlp.dense_h_to_4h.weight"].T),
                   "bias": t[h + "mlp.dense_h_to_4h.bias"]},
        "mlp_out": {"kernel": np.ascontiguousarray(t[h + "mlp.dense_4h_to_h.weight"].T),
                    "bias": t[h + "mlp.dense_4h_to_h.bias"]},
    }
  fields = {"name": "gpt", "position": "rope", "width": D, "num_layers": L, "num_heads": H,
            "mlp_ratio": inner // D, "max_len": hf_config["max_position_embeddings"],
            "layer_norm_eps": float(hf_config.get("layer_norm_eps", HF_LAYER_NORM_EPS))}
  return {"params": p}, fields
