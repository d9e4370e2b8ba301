"""Paired data for two-tower contrastive pretraining (CLIP, SigLIP): text with code or images.

`data.name` picks the pairs:
  code_pairs         docstring summaries with their functions' code, from the Python files
                     `data.source` names (the standard library by default)
  image_text_folder  `data.source` is a folder of images, each beside a same-named .txt
  anything else      a TFDS captioning dataset (coco_captions, ...) prepared as array_record
                     in `data.data_dir`; `data.text_key` ("captions/text") and
                     `data.image_key` name its features, and of several captions the first
                     is used

Each text side is tokenized once per split into int32 [N, length] (truncated, padded with
-1, no end token), cached as .npy next to the TFDS data and memory-mapped. Images stay
encoded until a row is loaded, then become uint8 [S, S, 3] (images.to_rgb).
"""
import dataclasses
import os
from typing import Callable

import numpy as np
import tensorflow_datasets as tfds
from tqdm import tqdm

from ssl_jax import storage
from ssl_jax.data import fingerprint, images, pair_builders, pipeline, prepare, tokenizers
from ssl_jax.data.prepare import data_dir
from ssl_jax.data.text import local_copy
from ssl_jax.errors import ConfigError, DataError

CODE = "code_pairs"
IMAGE_TEXT = "image_text_folder"
PAD = -1
TOKENIZER_EXAMPLES = 20_000  # training pairs a trained tokenizer is fitted on


def feature_keys(cfg) -> tuple[str, str]:
  """(text feature, pair feature) of the dataset cfg (config.data) names."""
  if cfg.name == CODE:
    return "text", "code"
  if cfg.name == IMAGE_TEXT:
    return "text", "image"
  return cfg.text_key, cfg.image_key


def lookup(tree, key: str):
  """tree[key], where a key with "/" may also be a path into nested features or examples
  ("captions/text"); a literal key such as coco's "image/id" wins. KeyError if absent."""
  if isinstance(tree, tfds.features.Sequence):
    tree = tree.feature
  if not hasattr(tree, "keys"):
    raise KeyError(key)
  if key in tree.keys():
    return tree[key]
  parts = key.split("/")
  for i in range(len(parts) - 1, 0, -1):
    head = "/".join(parts[:i])
    if head in tree.keys():
      return lookup(tree[head], "/".join(parts[i:]))
  raise KeyError(key)


def as_text(value) -> str:
  """A text feature's value as str; of a list of captions, the first."""
  if isinstance(value, (list, tuple, np.ndarray)) and not isinstance(value, (bytes, str)):
    value = value[0] if len(value) else b""
  return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _local_builder(cfg):
  if cfg.name == CODE:
    make = lambda root: pair_builders.CodePairs(source=cfg.source, data_dir=root)  # noqa: E731
  else:
    make = lambda root: pair_builders.ImageTextFolder(root=cfg.source, data_dir=root)  # noqa: E731
  return prepare.prepared(make, data_dir(cfg), f"{cfg.name} from {cfg.source!r}")


def _open_tfds(cfg, split: str):
  """A TFDS captioning dataset's split, its keys checked, top-level images left encoded."""
  how = (f"Prepare it where there is network access with `tfds build {cfg.name} "
         f"--file_format=array_record --data_dir=DIR` and pass --config.data.data_dir=DIR "
         f"(or use data.name={CODE!r} or {IMAGE_TEXT!r}).")
  source = prepare.open_tfds(cfg, split, how)
  features = source.dataset_info.features
  for field, key, kind in (("text_key", cfg.text_key, tfds.features.Text),
                           ("image_key", cfg.image_key, tfds.features.Image)):
    try:
      feature = lookup(features, key)
    except KeyError:
      feature = None
    if not isinstance(feature, kind):
      raise ConfigError(f"data.{field}={key!r} is not a {kind.__name__} feature of "
                        f"{cfg.name}; its features are {', '.join(features.keys())} "
                        "(name a nested one with '/', e.g. 'captions/text').")
  if cfg.image_key in features.keys():  # to_rgb decodes the bytes of just the rows read
    source = prepare.open_tfds(cfg, split, how,
                               decoders={cfg.image_key: tfds.decode.SkipDecoding()})
  return source


def open_split(cfg, split: str):
  """(random-access source of examples, dataset full name) of one split of cfg's pairs."""
  if cfg.name in (CODE, IMAGE_TEXT):
    builder = _local_builder(cfg)
    if split.split("[")[0] not in builder.info.splits:
      raise ConfigError(f"{builder.info.full_name} has no split {split!r}; its splits are "
                        f"{', '.join(builder.info.splits)}. Set data.train_split / "
                        "data.eval_split to those.")
    decoders = {"image": tfds.decode.SkipDecoding()} if cfg.name == IMAGE_TEXT else None
    source, name = builder.as_data_source(split=split, decoders=decoders), builder.info.full_name
  else:
    source = _open_tfds(cfg, split)
    name = source.dataset_info.full_name
  if len(source) == 0:
    raise DataError(f"The {split!r} split of {name} is empty; check data.source / data.name "
                    "and the split names.")
  return source, name


def _cached(path: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
  """The array at path (a .npy, local or URL), computed and saved once, memory-mapped."""
  local = local_copy(path) if storage.is_url(path) else path
  if not os.path.exists(local):
    os.makedirs(os.path.dirname(local), exist_ok=True)
    if local != path and storage.exists(path):
      storage.filesystem(path).get_file(path, local + ".tmp")
    else:
      with open(local + ".tmp", "wb") as f:
        np.save(f, compute())
      if local != path:
        storage.filesystem(path).put_file(local + ".tmp", path)
    os.replace(local + ".tmp", local)
  return np.load(local, mmap_mode="r")


def _token_rows(source, key: str, tok, length: int, desc: str) -> np.ndarray:
  """int32 [len(source), length]: each example's tokens, truncated, padded with PAD."""
  tokens_NxL = np.full([len(source), length], PAD, np.int32)
  for i in tqdm(range(len(source)), desc=desc, leave=False, mininterval=2):
    ids = tok.encode(as_text(lookup(source[i], key)))[:length]
    tokens_NxL[i, :len(ids)] = ids
  return tokens_NxL


@dataclasses.dataclass
class _Split:
  source: object
  text_NxT: np.ndarray
  code_NxP: np.ndarray | None  # None for images, read per row
  text_key: str
  pair_key: str
  image_size: int | None


@dataclasses.dataclass
class PairData:
  tokenizer: object  # a tokenizers.py tokenizer
  sides: tuple  # ("text", "code") or ("text", "image"): metric names use these
  dataset: str  # TFDS full name, e.g. "code_pairs/stdlib_abc123/1.0.0"
  fingerprint: dict | None  # fingerprint.of_splits of train and eval
  splits: dict = dataclasses.field(default_factory=dict, repr=False)  # split -> _Split

  def _split(self, split: str) -> _Split:
    if split not in self.splits:
      raise ValueError(f"{split!r} is not a loaded split of {self.dataset}: "
                       f"{', '.join(self.splits)}.")
    return self.splits[split]

  def loader(self, split: str) -> tuple[int, Callable]:
    """(number of pairs, load_rows): load_rows(int64 [b]) -> {"text": int32 [b, text_len],
    "pair": int32 [b, pair_len] code tokens or uint8 [b, S, S, 3] images}."""
    part = self._split(split)

    def load_rows(idx_B):
      idx_B = np.asarray(idx_B, np.int64)
      rows = {"text": np.asarray(part.text_NxT[idx_B], np.int32)}
      if part.code_NxP is not None:
        rows["pair"] = np.asarray(part.code_NxP[idx_B], np.int32)
      else:
        S = part.image_size
        pixels = [images.to_rgb(lookup(part.source[int(i)], part.pair_key), S) for i in idx_B]
        rows["pair"] = np.stack(pixels) if pixels else np.zeros([0, S, S, 3], np.uint8)
      return rows

    return len(part.text_NxT), load_rows

  def raw(self, split: str) -> tuple[list[str], list[str] | None, list[str]]:
    """(texts, code texts or None for images, ids) of the whole split, in row order."""
    part = self._split(split)
    examples = [part.source[i] for i in range(len(part.source))]
    texts = [as_text(lookup(ex, part.text_key)) for ex in examples]
    codes = ([as_text(lookup(ex, part.pair_key)) for ex in examples]
             if part.code_NxP is not None else None)
    ids = [as_text(ex["id"]) if "id" in ex else f"{split}[{i}]" for i, ex in enumerate(examples)]
    return texts, codes, ids


def load(cfg, tokenizer_spec: dict | None = None) -> PairData:
  """Opens (preparing if needed) and tokenizes the train and eval splits of cfg (config.data).

  tokenizer_spec: that exact tokenizer (a resumed or evaluated run's); else cfg.tokenizer,
  trained on the training split's texts (for code pairs, docstrings and code). With several
  processes, process 0 prepares and caches first; the others then read.
  """
  return pipeline.process_0_first(lambda: _load(cfg, tokenizer_spec), "pairs")


def _load(cfg, tokenizer_spec) -> PairData:
  is_code = cfg.name == CODE
  lengths = {"text_len": cfg.text_len, **({"pair_len": cfg.pair_len} if is_code else {})}
  for field, value in lengths.items():
    if value < 1:
      raise ConfigError(f"data.{field} must be at least 1, got {value}.")
  text_key, pair_key = feature_keys(cfg)
  sources = {}
  for split in dict.fromkeys((cfg.train_split, cfg.eval_split)):
    sources[split], name = open_split(cfg, split)
  train = sources[cfg.train_split]

  def train_docs():
    for i in range(min(len(train), TOKENIZER_EXAMPLES)):
      example = train[i]
      yield as_text(lookup(example, text_key))
      if is_code:
        yield as_text(lookup(example, pair_key))

  cache = storage.join(data_dir(cfg), "ssl_jax_tokens", name.replace("/", "_"))
  if tokenizer_spec is not None:
    tok = tokenizers.from_spec(tokenizer_spec)
  else:
    tok = tokenizers.build(cfg.tokenizer, cfg.vocab_size, train_docs, cache)
  sid = tokenizers.spec_id(tok.spec)

  def tokens(source, split, key, side, length):
    file = f"{split}.{side}{length}.{sid}.npy"
    return _cached(storage.join(cache, file),
                   lambda: _token_rows(source, key, tok, length, f"tokenizing {file}"))

  splits = {}
  for split, source in sources.items():
    text_NxT = tokens(source, split, text_key, "text", cfg.text_len)
    code_NxP = tokens(source, split, pair_key, "code", cfg.pair_len) if is_code else None
    splits[split] = _Split(source, text_NxT, code_NxP, text_key, pair_key,
                           None if is_code else cfg.image_size)
  sides = ("text", "code") if is_code else ("text", "image")
  prints = fingerprint.of_splits({cfg.train_split: train, cfg.eval_split: sources[cfg.eval_split]})
  return PairData(tok, sides, name, prints, splits)
