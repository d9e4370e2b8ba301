"""ResNet v1.5 with the ImageNet stem <-> transformers' ResNetModel.

ResNetModel computes the same network: a 7x7/2 conv, batch norm and ReLU, a 3x3/2 max pool
(padding 1), then four stages of basic or bottleneck blocks; the first block of stages 2-4
strides on its 3x3 conv (v1.5: downsample_in_bottleneck=False, downsample_in_first_stage=
False), and a block whose shape changes adds a 1x1 conv + batch norm projection. Batch norm
eps is 1e-5 on both sides; its running statistics are ssl_jax's "batch_stats".
Features: pooler_output (the spatial mean), flattened.

Padding agrees at every image size: ssl_jax pads its 7x7 and 3x3 convs k // 2 on each side
explicitly, as torch does, and its 1x1 convs (flax "SAME") need no padding, also at stride 2
on odd sizes. The max pools both pad with -inf.
torch's num_batches_tracked (used only when momentum=None) is written as 0.

model.stem="cifar" has no counterpart: see unsupported().
"""
from collections.abc import Mapping

import numpy as np

from ssl_jax.convert.image_processor import image_processor_config  # noqa: F401 (interface)
from ssl_jax.errors import ConfigError

HF_MODEL_TYPES = ("resnet",)


def unsupported(model_cfg) -> str | None:
  if model_cfg.get("name") != "resnet":
    return f"model.name={model_cfg.get('name')!r} is not a ResNet."
  if model_cfg.get("stem", "imagenet") != "imagenet":
    return (f"model.stem={model_cfg.get('stem')!r} (one 3x3 stride-1 conv, no max pool) has no "
            "counterpart in transformers: ResNetModel's stem is a 7x7 stride-2 conv and a max "
            "pool, and RegNet, BiT and RT-DETR's ResNet all downsample in theirs.")
  return None


def to_hf(variables: dict, model_cfg, vocab_size: int | None = None) -> tuple[dict, dict]:
  del vocab_size
  reason = unsupported(model_cfg)
  if reason:
    raise ConfigError(reason)
  if "batch_stats" not in variables:
    raise ConfigError("ResNet variables need their 'batch_stats' (the running statistics).")
  p = variables["params"]
  kernel_size, _, channels, width = p["Conv_0"]["kernel"].shape
  if kernel_size != 7:
    raise ConfigError(f"The stem conv is {kernel_size}x{kernel_size}; ResNetModel's is 7x7.")
  bottleneck = "Conv_2" in p["stage1_block1"]
  counts = [_count_blocks(p, stage) for stage in range(1, 5)]
  expansion = 4 if bottleneck else 1
  hf_config = {
      "model_type": "resnet", "architectures": ["ResNetModel"], "num_channels": channels,
      "embedding_size": width, "hidden_sizes": [width * 2 ** i * expansion for i in range(4)],
      "depths": counts, "layer_type": "bottleneck" if bottleneck else "basic",
      "hidden_act": "relu", "downsample_in_first_stage": False,
      "downsample_in_bottleneck": False,
  }
  mapping = _tensor_map(bottleneck, counts)
  if len(mapping) != _count_leaves(variables["params"]) + _count_leaves(variables["batch_stats"]):
    raise ConfigError("The ResNet variables have other modules than ResNetModel's.")
  tensors = {}
  for collection, path, name, layout in mapping:
    tree = variables[collection]
    for key in path:
      tree = tree[key]
    x = np.asarray(tree, np.float32)
    tensors[name] = np.ascontiguousarray(x.transpose(3, 2, 0, 1) if layout == "conv" else x)
  for name in [n for n in tensors if n.endswith(".running_mean")]:
    tensors[name.replace(".running_mean", ".num_batches_tracked")] = np.zeros((), np.float32)
  return hf_config, tensors


def from_hf(hf_config: dict, tensors: dict) -> tuple[dict, dict]:
  from ssl_jax.models.resnet import STAGES, Bottleneck
  c = {"layer_type": "bottleneck", "depths": [3, 4, 6, 3], "embedding_size": 64,
       "hidden_sizes": [256, 512, 1024, 2048], "hidden_act": "relu", "num_channels": 3,
       "downsample_in_first_stage": False, "downsample_in_bottleneck": False}
  c = {k: hf_config.get(k, v) for k, v in c.items()}
  bottleneck = c["layer_type"] == "bottleneck"
  depth = next((d for d, (block, counts) in STAGES.items()
                if (block is Bottleneck) == bottleneck and list(counts) == list(c["depths"])),
               None)
  if depth is None:
    raise ConfigError(f"depths={c['depths']} of {c['layer_type']} blocks is none of ssl_jax's "
                      f"ResNets ({', '.join(map(str, STAGES))}).")
  width, expansion = c["embedding_size"], 4 if bottleneck else 1
  if list(c["hidden_sizes"]) != [width * 2 ** i * expansion for i in range(4)]:
    raise ConfigError(f"hidden_sizes={c['hidden_sizes']} with embedding_size={width}: "
                      "ssl_jax's stages have width, 2, 4 and 8 times width channels "
                      "(times 4 for bottleneck blocks).")
  if c["downsample_in_first_stage"]:
    raise ConfigError("downsample_in_first_stage=True: ssl_jax's first stage keeps the size.")
  if bottleneck and c["downsample_in_bottleneck"]:
    raise ConfigError("downsample_in_bottleneck=True is ResNet v1 (stride on the 1x1 conv); "
                      "ssl_jax's is v1.5 (stride on the 3x3 conv).")
  if c["hidden_act"] != "relu":
    raise ConfigError(f"hidden_act={c['hidden_act']!r}: ssl_jax's ResNet uses ReLU.")
  if c["num_channels"] != 3:
    raise ConfigError(f"num_channels={c['num_channels']}: ssl_jax's images are RGB.")
  if any(k.startswith("resnet.") for k in tensors):  # ResNetForImageClassification's
    tensors = {k[len("resnet."):]: v for k, v in tensors.items() if k.startswith("resnet.")}
  variables = {"params": {}, "batch_stats": {}}
  for collection, path, name, layout in _tensor_map(bottleneck, c["depths"]):
    if name not in tensors:
      raise ConfigError(f"Tensor {name} (resnet) is missing from the weights.")
    t = np.asarray(tensors[name], np.float32)
    tree = variables[collection]
    for key in path[:-1]:
      tree = tree.setdefault(key, {})
    tree[path[-1]] = np.array(t.transpose(2, 3, 1, 0) if layout == "conv" else t, np.float32)
  fields = {"name": "resnet", "depth": depth, "stem": "imagenet", "width": width}
  return variables, fields


def _count_blocks(params: dict, stage: int) -> int:
  count = 0
  while f"stage{stage}_block{count + 1}" in params:
    count += 1
  return count


def _count_leaves(tree) -> int:
  return sum(map(_count_leaves, tree.values())) if isinstance(tree, Mapping) else 1


def _tensor_map(bottleneck: bool, counts):
  """(Flax collection, path, transformers name, layout) of every variable: each conv and
  the batch norm after it (ResNetConvLayer or ResNetShortCut) in network order."""
  units = [(("Conv_0",), ("BatchNorm_0",), "embedder.embedder")]
  convs = 3 if bottleneck else 2
  for stage, count in enumerate(counts):
    for i in range(count):
      flax, hf = f"stage{stage + 1}_block{i + 1}", f"encoder.stages.{stage}.layers.{i}"
      units += [((flax, f"Conv_{k}"), (flax, f"BatchNorm_{k}"), f"{hf}.layer.{k}")
                for k in range(convs)]
      # The shape changes: stride 2 (stages 2-4) or 4x the channels (bottleneck stage 1).
      if i == 0 and (stage > 0 or bottleneck):
        units.append(((flax, "proj"), (flax, f"BatchNorm_{convs}"), f"{hf}.shortcut"))
  out = []
  for conv, norm, hf in units:
    out += [("params", conv + ("kernel",), f"{hf}.convolution.weight", "conv"),
            ("params", norm + ("scale",), f"{hf}.normalization.weight", "same"),
            ("params", norm + ("bias",), f"{hf}.normalization.bias", "same"),
            ("batch_stats", norm + ("mean",), f"{hf}.normalization.running_mean", "same"),
            ("batch_stats", norm + ("var",), f"{hf}.normalization.running_var", "same")]
  return out
