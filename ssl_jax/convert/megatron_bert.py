"""BERT (ssl_jax's bidirectional Transformer) <-> transformers' MegatronBertModel / ...ForMaskedLM.

MegatronBERT is the pre-LayerNorm BERT: no LayerNorm on the embeddings, one before
attention and one before the MLP in each layer, a final LayerNorm on the encoder output;
learned absolute positions from 0. That is ssl_jax's BERT block for block, LayerNorm
epsilon (model.layer_norm_eps) included. What HF has and ssl_jax does not is written so
that it computes nothing:

- token type embeddings: one type (type_vocab_size=1) whose row is zeros (HF adds row 0
  when no token_type_ids are passed). An imported model with a non-zero row 0 has it
  folded into the position table, which is the same sum.
- the pooler of MegatronBertModel (a dense + tanh on the first token, trained by BERT's
  next-sentence task): the identity with zero bias, pooler_output = tanh(features[:, 0]).
  Dropped on import.

model.mlm_head decides the architecture: "transform" (dense, GELU, LayerNorm, the tied
embedding and an output bias) is MegatronBertForMaskedLM's head; "tied" has no HF
counterpart with a masked-LM head, so the encoder alone is exported as MegatronBertModel.

pad_token_id is None: HF uses it only as the word embedding's padding_idx, whose row then
gets no gradient when the model is fine-tuned in torch. ssl_jax trains every row (its pad
mask is an attention mask), so no row is frozen; a real id (HF's default 0 is the
tokenizer's first token) would stop a token ssl_jax trained from training further.
eos_token_id is the tokenizer's eos id where the export knows the tokenizer.
"""
import numpy as np

from ssl_jax.convert.common import GELU_TANH, LAYER_NORM_EPS, block_sizes, embedding_shape
from ssl_jax.errors import ConfigError

HF_MODEL_TYPES = ("megatron-bert",)
HF_LAYER_NORM_EPS = 1e-12  # MegatronBertConfig's default, where config.json leaves it out
_HEAD = "cls.predictions."


def unsupported(model_cfg) -> str | None:
  if model_cfg.get("name") != "bert":
    return f"model.name={model_cfg.get('name')!r} is not a BERT; MegatronBertModel is an encoder."
  if model_cfg.get("position", "learned") != "learned":
    return (f"model.position={model_cfg.get('position')!r}: MegatronBertModel adds learned "
            "absolute position embeddings and has no rotary variant; train with "
            "--config.model.position=learned to export.")
  return None


def notes(model_cfg) -> list[str]:
  if model_cfg.get("mlm_head", "tied") == "transform":
    return ["MegatronBertForMaskedLM has no pooler: AutoModel.from_pretrained gives the "
            "encoder (last_hidden_state as in ssl_jax) with a freshly initialised pooler."]
  return ["model.mlm_head='tied' has no Hugging Face masked-LM head; exporting the encoder "
          "(MegatronBertModel); train with --config.model.mlm_head=transform for "
          "MegatronBertForMaskedLM.",
          "MegatronBertModel's pooler (not part of ssl_jax's BERT) is the identity: "
          "pooler_output = tanh(first token's features)."]


def _dense(prefix: str, kernel_DxE, bias_E) -> dict:
  return {prefix + "weight": np.asarray(kernel_DxE).T, prefix + "bias": bias_E}


def _norm(prefix: str, ln: dict) -> dict:
  return {prefix + "weight": ln["scale"], prefix + "bias": ln["bias"]}


def to_hf(variables: dict, model_cfg, vocab_size: int | None,
          eos_id: int | None = None) -> tuple[dict, dict]:
  p = variables["params"]
  V, D = embedding_shape(p, vocab_size)
  L, H, dropout = block_sizes(model_cfg)
  masked_lm = model_cfg.get("mlm_head", "tied") == "transform"
  hf_config = {
      "model_type": "megatron-bert",
      "architectures": ["MegatronBertForMaskedLM" if masked_lm else "MegatronBertModel"],
      "vocab_size": V, "hidden_size": D, "num_hidden_layers": L, "num_attention_heads": H,
      "intermediate_size": p["block0"]["mlp_in"]["kernel"].shape[1], "hidden_act": "gelu_new",
      "max_position_embeddings": p["pos_embed"].shape[0], "type_vocab_size": 1,
      "layer_norm_eps": float(model_cfg.get("layer_norm_eps", LAYER_NORM_EPS)),
      "tie_word_embeddings": True, "is_decoder": False,
      # ssl_jax drops the embedding sum and each residual branch; never attention weights.
      "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": 0.0,
      "pad_token_id": None,  # see the module docstring
      "eos_token_id": eos_id,
  }
  base = "bert." if masked_lm else ""
  e = base + "embeddings."
  t = {e + "word_embeddings.weight": p["embed"]["embedding"],
       e + "position_embeddings.weight": p["pos_embed"],
       e + "token_type_embeddings.weight": np.zeros((1, D), np.float32)}
  for i in range(L):
    b, h = p[f"block{i}"], f"{base}encoder.layer.{i}."
    qkv_Dx3xHxK = np.asarray(b["attn"]["qkv"]["kernel"])
    qkv_bias_3xHxK = np.asarray(b["attn"]["qkv"]["bias"])
    t.update(_norm(h + "attention.ln.", b["ln_attn"]))
    for j, name in enumerate(("query", "key", "value")):
      t.update(_dense(f"{h}attention.self.{name}.", qkv_Dx3xHxK[:, j].reshape(D, D),
                      qkv_bias_3xHxK[j].reshape(D)))
    t.update(_dense(h + "attention.output.dense.",
                    np.asarray(b["attn"]["out"]["kernel"]).reshape(D, D), b["attn"]["out"]["bias"]))
    t.update(_norm(h + "ln.", b["ln_mlp"]))
    t.update(_dense(h + "intermediate.dense.", b["mlp_in"]["kernel"], b["mlp_in"]["bias"]))
    t.update(_dense(h + "output.dense.", b["mlp_out"]["kernel"], b["mlp_out"]["bias"]))
  t.update(_norm(base + "encoder.ln.", p["ln_f"]))
  if masked_lm:
    t.update(_dense(_HEAD + "transform.dense.", p["mlm_dense"]["kernel"], p["mlm_dense"]["bias"]))
    t.update(_norm(_HEAD + "transform.LayerNorm.", p["mlm_ln"]))
    t[_HEAD + "bias"] = p["mlm_bias"]
  else:
    t.update(_dense("pooler.dense.", np.eye(D, dtype=np.float32), np.zeros(D, np.float32)))
  return hf_config, {k: np.ascontiguousarray(v, np.float32) for k, v in t.items()}


def _check(hf_config: dict, tensors: dict):
  """ConfigError naming every setting that computes something ssl_jax's BERT does not."""
  c = hf_config
  bad = []
  if c.get("hidden_act", "gelu") not in GELU_TANH:
    bad.append(f"hidden_act={c.get('hidden_act', 'gelu')!r} (ssl_jax: tanh GELU)")
  eps = c.get("layer_norm_eps", HF_LAYER_NORM_EPS)
  if not _positive(eps):
    bad.append(f"layer_norm_eps={eps!r} (not a positive number)")
  if c.get("is_decoder", False) or c.get("add_cross_attention", False):
    bad.append("a decoder (is_decoder or add_cross_attention)")
  head = tensors.get(_HEAD + "decoder.weight")
  embedding = _strip(tensors)["embeddings.word_embeddings.weight"]
  untied = not c.get("tie_word_embeddings", True) and _HEAD + "transform.dense.weight" in tensors
  if untied or (head is not None and not np.array_equal(head, embedding)):
    bad.append("an output projection not tied to the word embeddings")
  if bad:
    raise ConfigError("This MegatronBERT differs from ssl_jax's BERT: " + "; ".join(bad) + ".")


def _positive(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < float("inf")


def _strip(tensors: dict) -> dict:
  """Encoder tensors without the "bert." prefix of the models with heads."""
  return {k.removeprefix("bert."): v for k, v in tensors.items()}


def _split(weight_DxD, bias_D, H: int) -> tuple:
  """A torch Linear (out, in) as a Flax kernel (D, H, K) and bias (H, K)."""
  D = weight_DxD.shape[1]
  return weight_DxD.T.reshape(D, H, D // H), bias_D.reshape(H, D // H)


def from_hf(hf_config: dict, tensors: dict) -> tuple[dict, dict]:
  _check(hf_config, tensors)
  t = _strip(tensors)
  D, L = hf_config["hidden_size"], hf_config["num_hidden_layers"]
  H = hf_config["num_attention_heads"]
  K = D // H
  inner = hf_config["intermediate_size"]
  if inner % D:
    raise ConfigError(f"intermediate_size={inner} is not a multiple of hidden_size={D} "
                      "(model.mlp_ratio).")
  ln = lambda prefix: {"scale": t[prefix + "weight"], "bias": t[prefix + "bias"]}
  dense = lambda prefix: {"kernel": np.ascontiguousarray(t[prefix + "weight"].T),
                          "bias": t[prefix + "bias"]}
  pos = t["embeddings.position_embeddings.weight"]
  type0 = t["embeddings.token_type_embeddings.weight"][0]
  if np.any(type0):  # HF adds token type 0 to every position
    pos = pos + type0
  p = {"embed": {"embedding": t["embeddings.word_embeddings.weight"]}, "pos_embed": pos,
       "ln_f": ln("encoder.ln.")}
  for i in range(L):
    h = f"encoder.layer.{i}."
    qkv = [_split(t[f"{h}attention.self.{n}.weight"], t[f"{h}attention.self.{n}.bias"], H)
           for n in ("query", "key", "value")]
    p[f"block{i}"] = {
        "ln_attn": ln(h + "attention.ln."),
        "attn": {"qkv": {"kernel": np.stack([k for k, _ in qkv], axis=1),
                         "bias": np.stack([b for _, b in qkv])},
                 "out": {"kernel": np.ascontiguousarray(
                             t[h + "attention.output.dense.weight"].T.reshape(H, K, D)),
                         "bias": t[h + "attention.output.dense.bias"]}},
        "ln_mlp": ln(h + "ln."),
        "mlp_in": dense(h + "intermediate.dense."),
        "mlp_out": dense(h + "output.dense."),
    }
  masked_lm = _HEAD + "transform.dense.weight" in t
  if masked_lm:
    p["mlm_dense"] = dense(_HEAD + "transform.dense.")
    p["mlm_ln"] = ln(_HEAD + "transform.LayerNorm.")
    p["mlm_bias"] = t.get(_HEAD + "bias", t.get(_HEAD + "decoder.bias"))
  fields = {"name": "bert", "position": "learned", "width": D, "num_layers": L, "num_heads": H,
            "mlp_ratio": inner // D, "max_len": hf_config["max_position_embeddings"],
            "mlm_head": "transform" if masked_lm else "tied",
            "layer_norm_eps": float(hf_config.get("layer_norm_eps", HF_LAYER_NORM_EPS))}
  return {"params": p}, fields
