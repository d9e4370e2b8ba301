"""A checkpoint's metadata as readers may use it: values validated, paths never followed.

A workdir can come from anywhere (a colleague, a download), and its metadata JSON is
plain text anyone can edit. Readers (evaluation, sampling) therefore take file-system
paths only from their own command line or environment, and check every other value
they use (names against the known ones, sizes against sane ranges, types everywhere)
before it reaches a builder, a model or a tokenizer.
"""
import base64
import binascii
import math
import re

import ml_collections

from ssl_jax.errors import ConfigError
from ssl_jax.models.layers import ATTENTION_CHOICES, MATMUL_CHOICES

# Config fields that name files or directories: replaced, never read from a checkpoint.
PATH_FIELDS = ("data.source", "data.data_dir")
_PATH_KEY = re.compile(r"(^|_)(dir|path|file|source|init_from|workdir)$")

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# TFDS names as `tfds.data_source` takes them: name, name/config, name:version.
_TFDS_NAME = re.compile(r"^[a-z0-9_]+(/[A-Za-z0-9_.-]+)?(:[0-9.*]+)?$")
# Splits and slices: "train", "validation", "train[:90%]", "train+test"; no path separators.
_SPLIT = re.compile(r"^[A-Za-z0-9_]+(\[[0-9:%,+\- ]*\])?(\+[A-Za-z0-9_]+(\[[0-9:%,+\- ]*\])?)*$")
_ENCODER_PATH = re.compile(r"^[A-Za-z0-9_]+(/[A-Za-z0-9_]+)*$")

NAMES = {
    "model.name": ("gpt", "bert", "lstm", "resnet", "vit"),
    "model.dtype": ("float32", "bfloat16", "float16"),
    "model.position": ("learned", "rope"),
    "model.stem": ("cifar", "imagenet"),
    "model.pool": ("cls", "mean"),
    "model.attention": ATTENTION_CHOICES,
    "model.matmul": MATMUL_CHOICES,
    "data.tokenizer": ("bytes", "sentencepiece", "words"),
    "model.size": ("", "tiny", "small", "base", "large"),
    # A two-tower run's other tower (tasks/two_tower.py).
    "pair_model.name": ("shared", "gpt", "bert", "vit", "resnet"),
    "pair_model.dtype": ("float32", "bfloat16", "float16"),
    "pair_model.position": ("learned", "rope"),
    "pair_model.stem": ("cifar", "imagenet"),
    "pair_model.pool": ("cls", "mean"),
    "pair_model.attention": ATTENTION_CHOICES,
    "pair_model.matmul": MATMUL_CHOICES,
    "pair_model.size": ("", "tiny", "small", "base", "large"),
}
PATTERNS = {
    "data.name": _TFDS_NAME, "data.train_split": _SPLIT, "data.eval_split": _SPLIT,
    "data.probe_split": _SPLIT,
    # Feature names; nested ones ("captions/text") in TFDS captioning datasets.
    "data.text_key": _ENCODER_PATH, "data.image_key": _ENCODER_PATH,
}
SIZES = {  # field: (smallest, largest) integer accepted
    # A ViT's depth, width and num_heads may be 0: its model.size preset decides them.
    "model.num_layers": (1, 1024), "model.depth": (0, 1024), "model.width": (0, 2 ** 16),
    "model.num_heads": (0, 1024), "model.max_len": (1, 2 ** 20), "model.patch_size": (1, 1024),
    "data.seq_len": (1, 2 ** 20), "data.vocab_size": (0, 2 ** 24), "data.image_size": (1, 8192),
    "batch_size": (1, 2 ** 20), "eval_steps": (1, 2 ** 31 - 1), "seed": (0, 2 ** 32 - 1),
    "data.text_len": (1, 2 ** 20), "data.pair_len": (1, 2 ** 20), "towers.embed_dim": (1, 2 ** 16),
    "pair_model.num_layers": (1, 1024), "pair_model.depth": (0, 1024),
    "pair_model.width": (0, 2 ** 16), "pair_model.num_heads": (0, 1024),
    "pair_model.max_len": (1, 2 ** 20), "pair_model.patch_size": (1, 1024),
}
FRACTIONS = ("model.dropout",)  # floats in [0, 1]
POSITIVES = ("model.layer_norm_eps",)  # numbers above 0
TOP_LEVEL_SIZES = {"vocab_size": (1, 2 ** 24), "num_classes": (2, 10 ** 6),
                   "text_vocab_size": (1, 2 ** 24), "pair_vocab_size": (1, 2 ** 24),
                   "image_size": (1, 8192), "mask_id": (0, 2 ** 24), "step": (0, 2 ** 62)}
MAX_DEPTH, MAX_STRING, MAX_LIST = 8, 4096, 10_000
MAX_TOKENIZER_BYTES = 64 * 2 ** 20


def _bad(where: str, what: str):
  raise ConfigError(f"The checkpoint's metadata has a bad {where}: {what}. It was not written "
                    "by ssl_jax as is; restore the workdir from a trusted copy.")


def _check_tree(node, where: str, depth: int = 0):
  """JSON of dicts with identifier keys, and scalars or short lists of scalars as leaves."""
  if depth > MAX_DEPTH:
    _bad(where, "nested too deeply")
  if isinstance(node, dict):
    for key, value in node.items():
      if not isinstance(key, str) or not _IDENT.match(key):
        _bad(where, f"field name {str(key)[:40]!r}")
      _check_tree(value, f"{where}.{key}" if where else key, depth + 1)
  elif isinstance(node, (list, tuple)):
    if len(node) > MAX_LIST:
      _bad(where, f"list of {len(node)} items")
    for item in node:
      if isinstance(item, (dict, list, tuple)):
        _bad(where, "nested list")
      _check_tree(item, where, depth + 1)
  elif isinstance(node, str):
    if len(node) > MAX_STRING:
      _bad(where, f"string of {len(node)} characters")
  elif isinstance(node, float):
    if not math.isfinite(node):
      _bad(where, f"value {node}")
  elif node is not None and not isinstance(node, (bool, int)):
    _bad(where, f"value of type {type(node).__name__}")


def _get(tree: dict, dotted: str):
  for part in dotted.split("."):
    if not isinstance(tree, dict) or part not in tree:
      return None
    tree = tree[part]
  return tree


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _check_int(where: str, value, low: int, high: int):
  if not _is_int(value) or not low <= value <= high:
    _bad(where, f"{value!r} (expected an integer from {low} to {high})")


def check_config(config: dict):
  """Validates a config dict read from a checkpoint; raises ConfigError on the first problem."""
  if not isinstance(config, dict):
    _bad("config", f"a {type(config).__name__} instead of a mapping")
  _check_tree(config, "")
  from ssl_jax.tasks import TASKS
  # "image_encoder": an image encoder imported from outside ssl_jax (init_from.py).
  for field, allowed in {"objective": (*TASKS, "image_encoder"), **NAMES}.items():
    value = _get(config, field)
    if value is not None and value not in allowed:
      _bad(f"config.{field}", f"{str(value)[:60]!r} (known: {', '.join(allowed)})")
  for field, pattern in PATTERNS.items():
    value = _get(config, field)
    if value is not None and (not isinstance(value, str) or not pattern.match(value)
                              or ".." in value):
      _bad(f"config.{field}", repr(str(value)[:60]))
  for field, (low, high) in SIZES.items():
    value = _get(config, field)
    if value is not None:
      _check_int(f"config.{field}", value, low, high)
  for field in FRACTIONS:
    value = _get(config, field)
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                              or not 0 <= value <= 1):
      _bad(f"config.{field}", f"{value!r} (expected a number from 0 to 1)")
  for field in POSITIVES:
    value = _get(config, field)
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                              or not value > 0):
      _bad(f"config.{field}", f"{value!r} (expected a positive number)")


def check_tokenizer(spec):
  """A tokenizer spec (data/tokenizers.py) of a known kind with well-formed contents."""
  # "huggingface": a tokenizer.json that came with imported weights (init_from).
  if not isinstance(spec, dict) or spec.get("kind") not in (*NAMES["data.tokenizer"],
                                                            "huggingface"):
    kind = spec.get("kind") if isinstance(spec, dict) else spec
    _bad("tokenizer", f"kind {str(kind)[:40]!r}")
  if spec["kind"] == "sentencepiece":
    model = spec.get("model")
    if not isinstance(model, str) or len(model) > MAX_TOKENIZER_BYTES:
      _bad("tokenizer", "sentencepiece model that is not a base64 string")
    try:
      base64.b64decode(model, validate=True)
    except (binascii.Error, ValueError):
      _bad("tokenizer", "sentencepiece model that is not valid base64")
  if spec["kind"] == "huggingface":
    if (not isinstance(spec.get("json"), str) or len(spec["json"]) > MAX_TOKENIZER_BYTES
        or not isinstance(spec.get("eos_id"), int) or isinstance(spec["eos_id"], bool)):
      _bad("tokenizer", "huggingface tokenizer without a tokenizer.json string and an eos id")
  if spec["kind"] == "words":
    words = spec.get("words")
    if (not isinstance(words, list) or len(words) > 2 ** 24
        or not all(isinstance(w, str) and len(w) <= MAX_STRING for w in words)):
      _bad("tokenizer", "word list that is not a list of strings")


def tokenizer(metadata: dict):
  """The checkpoint's tokenizer, built from its validated spec; ConfigError if it cannot be."""
  from ssl_jax.data import tokenizers
  check_tokenizer(metadata.get("tokenizer"))
  try:
    return tokenizers.from_spec(metadata["tokenizer"])
  except Exception as e:  # e.g. a sentencepiece model that does not parse
    _bad("tokenizer", f"it could not be loaded ({type(e).__name__}: {str(e)[:200]})")


def check(metadata) -> dict:
  """The metadata, validated in every field that readers use; ConfigError otherwise."""
  if not isinstance(metadata, dict):
    _bad("metadata", f"a {type(metadata).__name__} instead of a mapping")
  if "config" in metadata:
    check_config(metadata["config"])
  if "tokenizer" in metadata:
    check_tokenizer(metadata["tokenizer"])
  for field, (low, high) in TOP_LEVEL_SIZES.items():
    if field in metadata:
      _check_int(field, metadata[field], low, high)
  path = metadata.get("encoder_path")
  if path is not None and (not isinstance(path, str) or not _ENCODER_PATH.match(path)):
    _bad("encoder_path", repr(str(path)[:60]))
  return metadata


def _path_fields(node, prefix=""):
  for key, value in node.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      yield from _path_fields(value, name + ".")
    elif _PATH_KEY.search(key):
      yield name


def local_config(config: dict, data_source: str, data_dir: str):
  """ConfigDict of a validated checkpoint config with every path field replaced.

  data.source and data.data_dir become the reader's own (from its command line; "" means
  the default, as in training); any other path-like field is blanked. Returns (config,
  {field: recorded value}) so a reader can say what it did not follow.
  """
  check_config(config)
  config = ml_collections.ConfigDict(config)
  replaced = {}
  for field in sorted(set(PATH_FIELDS) | set(_path_fields(config.to_dict()))):
    *parents, last = field.split(".")
    node = config
    for part in parents:
      node = node.get(part)
      if node is None:
        break
    if node is None or last not in node:
      continue
    replaced[field] = node[last]
    mine = {"data.source": data_source, "data.data_dir": data_dir}.get(field, "")
    with node.ignore_type():
      node[last] = mine
  return config, replaced
