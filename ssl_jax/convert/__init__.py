"""Weights in and out of ssl_jax: one module per Hugging Face architecture.

Each module maps the Flax variables of one bare ssl_jax model (a language model's params,
or an image encoder's variables) to the tensors of the transformers architecture with the
same computation, and back, exactly (see tests/test_export_*.py for the parity checks):

  gpt2           GPT, learned positions         GPT2LMHeadModel
  gpt_neox       GPT, rotary positions          GPTNeoXForCausalLM (sequential residual)
  megatron_bert  BERT (pre-LayerNorm encoder)   MegatronBertModel / ...ForMaskedLM
  vit            ViT, class token               ViTModel
                 ViT, mean of patch tokens      SiglipVisionModel (no class token)
  resnet         ResNet v1.5, ImageNet stem     ResNetModel
  lstm           the LSTM language model        state_dict of a torch module (docs/export.md)

A module has HF_MODEL_TYPES, unsupported(model_cfg) -> reason or None, to_hf(variables,
model_cfg, vocab_size, eos_id=None) -> (hf_config, tensors) and from_hf(hf_config, tensors) ->
(variables, model fields); `notes(model_cfg)` where an export leaves something out.
Nothing here imports torch or transformers: folders are written with safetensors.
"""
import importlib
import json

import numpy as np

from ssl_jax import storage
from ssl_jax.errors import ConfigError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# config.json key under which an export records the ssl_jax run it came from (objective,
# config, tokenizer): an import of the folder then rebuilds exactly that model.
RUN_KEY = "ssl_jax"

_MODULES = ("gpt2", "gpt_neox", "megatron_bert", "vit", "resnet", "lstm")


def module_for_run(model_cfg):
  """The converter module of an ssl_jax model config."""
  name = model_cfg.get("name")
  if name == "gpt":
    module = "gpt_neox" if model_cfg.get("position", "learned") == "rope" else "gpt2"
  elif name == "bert":
    module = "megatron_bert"
  elif name in ("vit", "resnet", "lstm"):
    module = name
  else:
    raise ConfigError(f"No export for model.name={name!r}.")
  return importlib.import_module(f"ssl_jax.convert.{module}")


def module_for_hf(hf_config: dict):
  """The converter module that reads an HF config's model_type."""
  model_type = hf_config.get("model_type")
  for name in _MODULES:
    module = importlib.import_module(f"ssl_jax.convert.{name}")
    if model_type in module.HF_MODEL_TYPES:
      return module
  known = sorted(t for n in _MODULES
                 for t in importlib.import_module(f"ssl_jax.convert.{n}").HF_MODEL_TYPES)
  raise ConfigError(f"model_type {model_type!r} cannot be imported; ssl_jax reads "
                    f"{', '.join(known)}.")


def is_hf_folder(path: str) -> bool:
  return (storage.exists(storage.join(path, CONFIG_FILE))
          and not storage.isdir(storage.join(path, "checkpoints")))


def save(out_dir: str, hf_config: dict, tensors: dict):
  """config.json and model.safetensors (float32, contiguous) into out_dir."""
  from safetensors.numpy import save
  storage.makedirs(out_dir)
  # np.array keeps 0-d buffers (BatchNorm's num_batches_tracked) 0-d; float32 throughout,
  # transformers casts integer buffers back when it loads them.
  arrays = {k: np.array(v, np.float32, order="C") for k, v in tensors.items()}
  storage.write_atomic(storage.join(out_dir, WEIGHTS_FILE),
                       save(arrays, metadata={"format": "pt"}))
  storage.write_atomic(storage.join(out_dir, CONFIG_FILE),
                       json.dumps(hf_config, indent=2, sort_keys=True) + "\n")


def load(path: str) -> tuple[dict, dict]:
  """(hf_config, {name: float32 numpy array}) of an HF folder with safetensors weights."""
  config_path = storage.join(path, CONFIG_FILE)
  if not storage.exists(config_path):
    raise ConfigError(f"{path} has no {CONFIG_FILE}: not a Hugging Face model folder.")
  try:
    hf_config = json.loads(storage.read_bytes(config_path))
  except ValueError as e:
    raise ConfigError(f"{config_path} is not valid JSON ({e}).") from None
  files = sorted(f for f in storage.listdir(path) if f.endswith(".safetensors"))
  if not files:
    pickled = [f for f in storage.listdir(path) if f.endswith((".bin", ".pt", ".pth"))]
    extra = (f" It has {', '.join(pickled)}: ssl_jax reads no pickles; convert them with "
             "transformers (model.save_pretrained(dir, safe_serialization=True)).") if pickled else ""
    raise ConfigError(f"{path} has no .safetensors weights.{extra}")
  tensors = {}
  for name in files:
    tensors.update(_read_safetensors(storage.read_bytes(storage.join(path, name))))
  return hf_config, tensors


def _read_safetensors(data: bytes) -> dict:
  """float32 numpy arrays; bfloat16 and float16 are widened (numpy has no bfloat16 reader)."""
  import ml_dtypes
  header_len = int.from_bytes(data[:8], "little")
  header = json.loads(data[8:8 + header_len])
  body = memoryview(data)[8 + header_len:]
  dtypes = {"F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16, "F64": np.float64,
            "I64": np.int64, "I32": np.int32, "U8": np.uint8, "BOOL": np.bool_}
  out = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    if info["dtype"] not in dtypes:
      raise ConfigError(f"Tensor {name} has dtype {info['dtype']}, which ssl_jax cannot read.")
    start, end = info["data_offsets"]
    array = np.frombuffer(body[start:end], dtypes[info["dtype"]]).reshape(info["shape"])
    out[name] = array.astype(np.float32) if array.dtype.kind == "f" or info["dtype"] == "BF16" \
        else array.copy()
  return out


def bare_model(params, model_state, metadata):
  """(Flax variables of the exported model, vocab size or None): a language model's params
  (plus BERT's mask id), or the image encoder at metadata["encoder_path"]."""
  config = metadata["config"]
  if "encoder_path" in metadata:
    from ssl_jax.evaluate.image_transfer import encoder_variables
    encoder_params, state = encoder_variables(params, model_state, metadata["encoder_path"])
    return {"params": encoder_params, **state}, None
  extra = 1 if config.get("objective") == "masked_lm" else 0  # BERT's [MASK] id
  return {"params": params}, int(metadata["vocab_size"]) + extra
