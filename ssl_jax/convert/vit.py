"""ViT <-> transformers' ViTModel (pool="cls") or SiglipVisionModel (pool="mean").

Both compute what ssl_jax's ViT does: a patch conv with bias, learned position embeddings,
pre-LayerNorm blocks (eps 1e-6, flax's default) with biased query/key/value/output
projections and a tanh-approximated GELU MLP (flax's nn.gelu default), then a final
LayerNorm. They differ where ssl_jax's pool does:

  pool="cls"   ViTModel: a class token before the patches, N + 1 position rows;
               features = last_hidden_state[:, 0]
  pool="mean"  SiglipVisionModel, vision_use_head=False: patches only, N position rows;
               features = last_hidden_state.mean(1)

ViTModel always builds a pooler (dense + activation on the class token), which ssl_jax has
not: it is written as the identity with pooler_act="linear", so pooler_output is the
features as well. Tensor names are those save_pretrained writes (transformers 5 renames
them on load); SigLIP's carry the "vision_model." prefix of Google's checkpoints, which
transformers 5 strips. Flax attention kernels keep the heads apart: query (D, H, K) is the
transpose of q's (H*K, D) weight, head-major as transformers splits it.
The image size is not a model field: it is the square of position rows times patch_size.
"""
import math
from collections.abc import Mapping

import numpy as np

from ssl_jax.convert.image_processor import image_processor_config  # noqa: F401 (interface)
from ssl_jax.errors import ConfigError

HF_MODEL_TYPES = ("vit", "siglip_vision_model")
LAYER_NORM_EPS = 1e-6  # flax nn.LayerNorm's default
GELU_TANH = ("gelu_pytorch_tanh", "gelu_new")
_ARCHITECTURE = {"cls": ("vit", "ViTModel"), "mean": ("siglip_vision_model", "SiglipVisionModel")}
# Wrapper prefixes read with or without: ViTForImageClassification's, SiglipModel's.
_READ_PREFIX = {"cls": "vit.", "mean": "vision_model."}
_WRITE_PREFIX = {"cls": "", "mean": "vision_model."}

# transformers' name of each tensor group of one block, per pool.
_BLOCK_NAMES = {
    "cls": {"ln1": "layernorm_before", "query": "attention.attention.query",
            "key": "attention.attention.key", "value": "attention.attention.value",
            "out": "attention.output.dense", "ln2": "layernorm_after",
            "fc1": "intermediate.dense", "fc2": "output.dense"},
    "mean": {"ln1": "layer_norm1", "query": "self_attn.q_proj", "key": "self_attn.k_proj",
             "value": "self_attn.v_proj", "out": "self_attn.out_proj", "ln2": "layer_norm2",
             "fc1": "mlp.fc1", "fc2": "mlp.fc2"},
}
_ATTN = "MultiHeadDotProductAttention_0"
# The Flax module path of each group inside an EncoderBlock.
_BLOCK_PATHS = {"ln1": ("LayerNorm_0",), "query": (_ATTN, "query"), "key": (_ATTN, "key"),
                "value": (_ATTN, "value"), "out": (_ATTN, "out"), "ln2": ("LayerNorm_1",),
                "fc1": ("MlpBlock_0", "Dense_0"), "fc2": ("MlpBlock_0", "Dense_1")}


def unsupported(model_cfg) -> str | None:
  if model_cfg.get("name") != "vit":
    return f"model.name={model_cfg.get('name')!r} is not a ViT."
  if model_cfg.get("pool", "cls") not in _ARCHITECTURE:
    return (f"model.pool={model_cfg.get('pool')!r} is neither 'cls' (ViTModel) nor 'mean' "
            "(SiglipVisionModel).")
  return None


def notes(model_cfg) -> list[str]:
  if model_cfg.get("pool", "cls") == "cls":
    return ["ViTModel's pooler, which ssl_jax's ViT has not, is written as the identity "
            "(pooler_act='linear'): pooler_output equals last_hidden_state[:, 0], the features."]
  return ["SiglipVisionModel has no pooler here (vision_use_head=False): the features are "
          "last_hidden_state.mean(1)."]


def to_hf(variables: dict, model_cfg, vocab_size: int | None = None) -> tuple[dict, dict]:
  del vocab_size
  reason = unsupported(model_cfg)
  if reason:
    raise ConfigError(reason)
  p = variables["params"]
  pool = "cls" if "cls" in p else "mean"
  patch, _, channels, width = p["patchify"]["kernel"].shape
  depth = 0
  while f"block{depth}" in p:
    depth += 1
  heads = p["block0"][_ATTN]["query"]["kernel"].shape[1]
  hidden = p["block0"]["MlpBlock_0"]["Dense_0"]["kernel"].shape[1]
  num_patches = p["pos_embedding"].shape[1] - (pool == "cls")
  side = math.isqrt(num_patches)
  if side * side != num_patches:
    raise ConfigError(f"{num_patches} position embeddings do not tile a square image.")
  model_type, architecture = _ARCHITECTURE[pool]
  hf_config = {
      "model_type": model_type, "architectures": [architecture],
      "hidden_size": width, "num_hidden_layers": depth, "num_attention_heads": heads,
      "intermediate_size": hidden, "hidden_act": "gelu_pytorch_tanh",
      "layer_norm_eps": LAYER_NORM_EPS, "image_size": side * patch, "patch_size": patch,
      "num_channels": channels,
  }
  if pool == "cls":
    hf_config.update(qkv_bias=True, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                     pooler_output_size=width, pooler_act="linear")
  else:
    hf_config.update(vision_use_head=False, attention_dropout=0.0)
  mapping = _tensor_map(pool, depth)
  if len(mapping) != _count_leaves(p):
    raise ConfigError("The ViT params have other modules than the mapped architecture's.")
  tensors = {_WRITE_PREFIX[pool] + name: np.ascontiguousarray(_to_torch(_get(p, path), layout))
             for path, name, layout in mapping}
  if pool == "cls":
    tensors["pooler.dense.weight"] = np.eye(width, dtype=np.float32)
    tensors["pooler.dense.bias"] = np.zeros(width, np.float32)
  return hf_config, tensors


def from_hf(hf_config: dict, tensors: dict) -> tuple[dict, dict]:
  model_type = hf_config.get("model_type")
  pools = {t: pool for pool, (t, _) in _ARCHITECTURE.items()}
  if model_type not in pools:
    raise ConfigError(f"model_type {model_type!r} is not one of {', '.join(HF_MODEL_TYPES)}.")
  pool = pools[model_type]
  c = _checked_config(hf_config, pool)
  tensors = _without_prefix(tensors, _READ_PREFIX[pool])
  params = {}
  for path, name, layout in _tensor_map(pool, c["num_hidden_layers"]):
    if name not in tensors:
      raise ConfigError(f"Tensor {name} ({model_type}) is missing from the weights.")
    array = _to_flax(np.asarray(tensors[name], np.float32), layout, c["num_attention_heads"])
    _set(params, path, np.array(array, np.float32))  # a contiguous copy
  fields = {"name": "vit", "patch_size": c["patch_size"], "depth": c["num_hidden_layers"],
            "width": c["hidden_size"], "num_heads": c["num_attention_heads"],
            "mlp_ratio": c["intermediate_size"] // c["hidden_size"], "pool": pool}
  return {"params": params}, fields


def _checked_config(hf_config: dict, pool: str) -> dict:
  """The fields from_hf reads, with transformers' defaults; ConfigError where ssl_jax's ViT
  computes something else."""
  defaults = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
              "intermediate_size": 3072, "patch_size": 16, "image_size": 224,
              "num_channels": 3, "qkv_bias": True}
  defaults.update({"hidden_act": "gelu", "layer_norm_eps": 1e-12} if pool == "cls" else
                  {"hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6})
  c = {k: hf_config.get(k, v) for k, v in defaults.items()}
  for key in ("patch_size", "image_size"):
    if isinstance(c[key], (list, tuple)):
      if len(set(c[key])) != 1:
        raise ConfigError(f"{key}={c[key]}: ssl_jax's ViT takes square images and patches.")
      c[key] = c[key][0]
  if c["hidden_act"] not in GELU_TANH:
    raise ConfigError(f"hidden_act={c['hidden_act']!r}: ssl_jax's ViT uses the "
                      "tanh-approximated GELU (gelu_pytorch_tanh).")
  if c["layer_norm_eps"] != LAYER_NORM_EPS:
    raise ConfigError(f"layer_norm_eps={c['layer_norm_eps']}: ssl_jax's LayerNorms use "
                      f"{LAYER_NORM_EPS}.")
  if not c["qkv_bias"]:
    raise ConfigError("qkv_bias=False: ssl_jax's attention projections have biases.")
  if c["num_channels"] != 3:
    raise ConfigError(f"num_channels={c['num_channels']}: ssl_jax's images are RGB.")
  if c["intermediate_size"] % c["hidden_size"]:
    raise ConfigError(f"intermediate_size={c['intermediate_size']} is not a multiple of "
                      f"hidden_size={c['hidden_size']} (model.mlp_ratio is an integer).")
  return c


def _tensor_map(pool: str, depth: int):
  """(Flax param path, transformers name, layout) of every tensor but ViTModel's pooler."""
  if pool == "cls":
    top = [(("cls",), "embeddings.cls_token", "same"),
           (("pos_embedding",), "embeddings.position_embeddings", "same")]
    patch, block, final = "embeddings.patch_embeddings.projection", "encoder.layer", "layernorm"
  else:
    top = [(("pos_embedding",), "embeddings.position_embedding.weight", "table")]
    patch, block, final = "embeddings.patch_embedding", "encoder.layers", "post_layernorm"
  out = top + [(("patchify", "kernel"), patch + ".weight", "conv"),
               (("patchify", "bias"), patch + ".bias", "same")]
  for i in range(depth):
    for group, name in _BLOCK_NAMES[pool].items():
      path, name = (f"block{i}",) + _BLOCK_PATHS[group], f"{block}.{i}.{name}"
      if group.startswith("ln"):
        out += [(path + ("scale",), name + ".weight", "same"),
                (path + ("bias",), name + ".bias", "same")]
      elif group in ("query", "key", "value"):
        out += [(path + ("kernel",), name + ".weight", "heads_in"),
                (path + ("bias",), name + ".bias", "heads_bias")]
      elif group == "out":
        out += [(path + ("kernel",), name + ".weight", "heads_out"),
                (path + ("bias",), name + ".bias", "same")]
      else:
        out += [(path + ("kernel",), name + ".weight", "dense"),
                (path + ("bias",), name + ".bias", "same")]
  return out + [(("final_norm", "scale"), final + ".weight", "same"),
                (("final_norm", "bias"), final + ".bias", "same")]


def _to_torch(x, layout: str) -> np.ndarray:
  x = np.asarray(x, np.float32)
  if layout == "conv":  # (p, p, C, D) -> (D, C, p, p)
    return x.transpose(3, 2, 0, 1)
  if layout == "dense":  # (in, out) -> (out, in)
    return x.T
  if layout == "heads_in":  # (D, H, K) -> (H*K, D)
    return x.reshape(x.shape[0], -1).T
  if layout == "heads_bias":  # (H, K) -> (H*K,)
    return x.reshape(-1)
  if layout == "heads_out":  # (H, K, D) -> (D, H*K)
    return x.reshape(-1, x.shape[-1]).T
  if layout == "table":  # (1, N, D) -> (N, D): an nn.Embedding
    return x[0]
  return x


def _to_flax(t: np.ndarray, layout: str, num_heads: int) -> np.ndarray:
  if layout == "conv":
    return t.transpose(2, 3, 1, 0)
  if layout == "dense":
    return t.T
  if layout == "heads_in":
    return t.T.reshape(t.shape[1], num_heads, -1)
  if layout == "heads_bias":
    return t.reshape(num_heads, -1)
  if layout == "heads_out":
    return t.T.reshape(num_heads, -1, t.shape[0])
  if layout == "table":
    return t[None]
  return t


def _without_prefix(tensors: dict, prefix: str) -> dict:
  """The model's own tensors of a checkpoint saved with or without its wrapper's prefix."""
  if not any(k.startswith(prefix) for k in tensors):
    return tensors
  return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _count_leaves(tree) -> int:
  return sum(map(_count_leaves, tree.values())) if isinstance(tree, Mapping) else 1


def _get(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def _set(tree: dict, path, value):
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value
