"""Text corpora for language modelling: TFDS split -> token stream -> packed sequences.

Each split is tokenized once into a flat token array (documents separated by EOS) that is
cached as .npy next to the TFDS data and memory-mapped; sequence i is tokens[i*T : i*T+T+1].
"""
import dataclasses
import hashlib
import os

import numpy as np
import tensorflow_datasets as tfds
from tqdm import tqdm

from ssl_jax import storage
from ssl_jax.data import fingerprint, pipeline, prepare, tokenizers
from ssl_jax.data.prepare import data_dir
from ssl_jax.data.text_builder import LocalText
from ssl_jax.errors import ConfigError, DataError

LOCAL = "local_text"


def open_split(cfg, split: str):
  """(random-access source of examples, dataset name with version) for a split."""
  if cfg.name == LOCAL:
    builder = prepare.prepared(lambda root: LocalText(source=cfg.source, data_dir=root),
                               data_dir(cfg), repr(cfg.source))
    return builder.as_data_source(split=split), builder.info.full_name
  try:
    source = tfds.data_source(cfg.name, data_dir=data_dir(cfg), split=split, download=False)
  except Exception as e:  # tfds raises several types for "not prepared"
    raise DataError(
        f"Could not open TFDS dataset {cfg.name!r} split {split!r} in {data_dir(cfg)}: {e}\n"
        f"Prepare it where there is network access with `tfds build {cfg.name} "
        f"--file_format=array_record --data_dir=DIR` and pass --config.data.data_dir=DIR.") from e
  return source, f"{cfg.name}/{split}"


def _text(example, key: str) -> str:
  value = example[key]
  return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _docs(source, key: str, limit: int | None = None):
  for i in range(len(source) if limit is None else min(limit, len(source))):
    yield _text(source[i], key)


def _tokenize_split(source, key, tok, path) -> np.ndarray:
  """The split's tokens, memory-mapped from the cache at path (tokenized once).

  A cache in object storage is copied to a local one first (a URL cannot be mapped).
  """
  local = local_copy(path) if storage.is_url(path) else path
  if os.path.exists(local):
    return np.load(local, mmap_mode="r")
  if local != path and storage.exists(path):
    storage.filesystem(path).get_file(path, local + ".tmp")
    os.replace(local + ".tmp", local)
    return np.load(local, mmap_mode="r")
  dtype = np.uint16 if tok.vocab_size <= 65535 else np.int32
  pieces = []
  for doc in tqdm(_docs(source, key), total=len(source), desc=f"tokenizing {os.path.basename(path)}",
                  leave=False, mininterval=2):
    pieces.append(tok.encode(doc).astype(dtype))
    pieces.append(np.array([tok.eos_id], dtype))
  tokens = np.concatenate(pieces) if pieces else np.zeros([0], dtype)
  os.makedirs(os.path.dirname(local), exist_ok=True)
  with open(local + ".tmp", "wb") as f:
    np.save(f, tokens)
  os.replace(local + ".tmp", local)
  if local != path:
    storage.filesystem(path).put_file(local, path)
  return np.load(local, mmap_mode="r")


def local_copy(url: str) -> str:
  """Where this host keeps its copy of a token cache that lives at url."""
  digest = hashlib.sha1(url.encode()).hexdigest()[:16]
  return os.path.join(os.path.expanduser("~/.cache/ssl_jax/tokens"),
                      f"{digest}.{storage.basename(url)}")


@dataclasses.dataclass
class TextData:
  tokenizer: object
  train_tokens: np.ndarray
  eval_tokens: np.ndarray
  dataset: str
  fingerprint: dict | None = None  # data/fingerprint.py: checked when a run resumes


def load(cfg) -> TextData:
  """Opens (preparing if needed) and tokenizes the train and eval splits of `cfg` (config.data).

  With several processes, process 0 prepares and caches first; the others then read.
  """
  return pipeline.process_0_first(lambda: _load(cfg), "text")


def _load(cfg) -> TextData:
  train_src, name = open_split(cfg, cfg.train_split)
  eval_src, _ = open_split(cfg, cfg.eval_split)
  for split, src in ((cfg.train_split, train_src), (cfg.eval_split, eval_src)):
    if len(src) == 0:
      raise DataError(f"The {split!r} split of {name} is empty; check data.source / data.name.")
  features = getattr(getattr(train_src, "dataset_info", None), "features", None)
  if features is not None and cfg.text_key not in features:  # before any cached tokens are used
    raise ConfigError(f"data.text_key={cfg.text_key!r} is not a feature of {name}; it has "
                      f"{', '.join(features)}.")
  cache = storage.join(data_dir(cfg), "ssl_jax_tokens", name.replace("/", "_"))
  tok = tokenizers.build(cfg.tokenizer, cfg.vocab_size,
                         lambda: _docs(train_src, cfg.text_key, limit=5000), cache)
  sid = tokenizers.spec_id(tok.spec)
  train = _tokenize_split(train_src, cfg.text_key, tok, f"{cache}/{cfg.train_split}.{sid}.npy")
  evals = _tokenize_split(eval_src, cfg.text_key, tok, f"{cache}/{cfg.eval_split}.{sid}.npy")
  splits = {cfg.train_split: train_src, cfg.eval_split: eval_src}
  return TextData(tok, train, evals, name, fingerprint.of_splits(splits))


def sequence_loader(tokens: np.ndarray, seq_len: int):
  """(number of sequences, load_rows) for packed sequences of seq_len + 1 tokens."""
  count = (len(tokens) - 1) // seq_len
  offsets = np.arange(seq_len + 1)

  def load_rows(idx_B):
    return {"tokens": np.asarray(tokens[idx_B[:, None] * seq_len + offsets[None]], np.int32)}

  return count, load_rows
