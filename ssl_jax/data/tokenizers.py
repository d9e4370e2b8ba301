"""Tokenizers: bytes (default, needs no files), SentencePiece, a word vocabulary, and any
Hugging Face tokenizer.json (imported models keep the tokenizer they were trained with).

Every tokenizer has `vocab_size`, `eos_id`, `encode(str) -> int32[N]`, `decode(ids) -> str`,
`token_bytes` (UTF-8 length of each token, for bits per byte) and round-trips through a
JSON-able `spec` so the workdir records exactly how text was turned into ids.
"""
import base64
import collections
import hashlib
import io
import json
import os
import re

import numpy as np

from ssl_jax import storage
from ssl_jax.errors import ConfigError


class ByteTokenizer:
  kind = "bytes"
  vocab_size = 257  # 256 byte values + end-of-document
  eos_id = 256

  def encode(self, text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32)

  def decode(self, ids) -> str:
    return bytes(int(i) for i in ids if i < 256).decode("utf-8", errors="replace")

  @property
  def token_bytes(self) -> np.ndarray:
    return np.array([1] * 256 + [0], np.int32)

  @property
  def spec(self) -> dict:
    return {"kind": self.kind}


class SentencePieceTokenizer:
  kind = "sentencepiece"

  def __init__(self, model_proto: bytes):
    import sentencepiece as spm
    self._proto = model_proto
    self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
    self.vocab_size = self._sp.get_piece_size()
    self.eos_id = self._sp.eos_id()

  def encode(self, text: str) -> np.ndarray:
    return np.asarray(self._sp.encode(text), np.int32)

  def decode(self, ids) -> str:
    return self._sp.decode([int(i) for i in ids if i != self.eos_id])

  @property
  def token_bytes(self) -> np.ndarray:
    sizes = []
    for i in range(self.vocab_size):
      piece = self._sp.id_to_piece(i)
      if self._sp.is_byte(i):
        sizes.append(1)
      elif self._sp.is_control(i) or self._sp.is_unknown(i):
        sizes.append(0)
      else:
        sizes.append(len(piece.replace("\u2581", " ").encode("utf-8")))
    return np.array(sizes, np.int32)

  @property
  def spec(self) -> dict:
    return {"kind": self.kind, "model": base64.b64encode(self._proto).decode()}

  @classmethod
  def train(cls, docs, vocab_size: int, max_lines: int = 300_000):
    import sentencepiece as spm
    lines = []
    for doc in docs:
      lines.extend(line for line in doc.split("\n") if line.strip())
      if len(lines) >= max_lines:
        break
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines[:max_lines]), model_writer=out, vocab_size=vocab_size,
        model_type="bpe", byte_fallback=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        user_defined_symbols=["\n"], split_digits=True, minloglevel=2,
        eos_id=2, bos_id=-1, unk_id=0, pad_id=-1)
    return cls(out.getvalue())


class WordTokenizer:
  """The classic word-level vocabulary: most frequent words, the rest map to <unk>.

  Whitespace runs are tokens too, so decoding restores the text except for unknown words.
  """
  kind = "words"
  _pattern = re.compile(r"\w+|\s+|[^\w\s]")

  def __init__(self, words: list[str]):
    self.words = ["<unk>", "<eos>"] + list(words)
    self._ids = {w: i for i, w in enumerate(self.words)}
    self.vocab_size = len(self.words)
    self.eos_id = 1

  def encode(self, text: str) -> np.ndarray:
    return np.asarray([self._ids.get(w, 0) for w in self._pattern.findall(text)], np.int32)

  def decode(self, ids) -> str:
    return "".join(self.words[int(i)] if i != self.eos_id else "" for i in ids)

  @property
  def token_bytes(self) -> np.ndarray:
    # <unk> stands for one unknown word; count it as its average length (5 bytes).
    return np.array([5, 0] + [len(w.encode("utf-8")) for w in self.words[2:]], np.int32)

  @property
  def spec(self) -> dict:
    return {"kind": self.kind, "words": self.words[2:]}

  @classmethod
  def train(cls, docs, vocab_size: int):
    counts = collections.Counter()
    for doc in docs:
      counts.update(cls._pattern.findall(doc))
    return cls([w for w, _ in counts.most_common(vocab_size - 2)])


class HuggingFaceTokenizer:
  """A tokenizer.json of the Hugging Face `tokenizers` library, with nothing added around it.

  Text is always text: special tokens are never added, and their literal spelling in a
  document ("</s>") is encoded like any other text (transformers' split_special_tokens=True);
  ssl_jax marks document ends with eos_id itself. Truncation and padding saved in the file
  are turned off, so whole documents are encoded.
  """
  kind = "huggingface"

  def __init__(self, tokenizer_json: str, eos_id: int):
    import tokenizers
    self._json = tokenizer_json
    self._tok = tokenizers.Tokenizer.from_str(tokenizer_json)
    self._tok.no_truncation()
    self._tok.no_padding()
    self._tok.encode_special_tokens = True
    ids = list(self._tok.get_vocab(with_added_tokens=True).values())
    self.vocab_size = max(ids) + 1  # ids need not be contiguous
    self.eos_id = int(eos_id)
    if not 0 <= self.eos_id < self.vocab_size:
      raise ConfigError(f"The huggingface tokenizer's eos_id {eos_id} is not among its "
                        f"{self.vocab_size} ids.")

  def encode(self, text: str) -> np.ndarray:
    return np.asarray(self._tok.encode(text, add_special_tokens=False).ids, np.int32)

  def decode(self, ids) -> str:
    return self._tok.decode([int(i) for i in ids if i != self.eos_id], skip_special_tokens=True)

  @property
  def token_bytes(self) -> np.ndarray:
    from tokenizers import pre_tokenizers
    config = json.loads(self._json)
    byte_fallback = bool((config.get("model") or {}).get("byte_fallback"))
    byte_level = "ByteLevel" in json.dumps(config.get("decoder"))
    byte_chars = set(pre_tokenizers.ByteLevel.alphabet())
    added = self._tok.get_added_tokens_decoder()
    sizes = np.zeros(self.vocab_size, np.int32)
    plain = []
    for i in range(self.vocab_size):
      token = self._tok.id_to_token(i)
      if token is None or (i in added and added[i].special):
        continue
      if i in added:
        sizes[i] = len(added[i].content.encode("utf-8"))
      elif byte_fallback and re.fullmatch(r"<0x[0-9A-F]{2}>", token):
        sizes[i] = 1
      elif byte_level and set(token) <= byte_chars:
        sizes[i] = len(token)  # one character per byte
      else:
        plain.append(i)
    # A token's text in the middle of a sequence: decoders strip a leading space (the
    # SentencePiece dummy prefix) from the first token only.
    twice = self._tok.decode_batch([[i, i] for i in plain], skip_special_tokens=False)
    once = self._tok.decode_batch([[i] for i in plain], skip_special_tokens=False)
    for i, a, b in zip(plain, twice, once):
      sizes[i] = len(a.encode("utf-8")) - len(b.encode("utf-8"))
    return sizes

  @property
  def spec(self) -> dict:
    return {"kind": self.kind, "json": self._json, "eos_id": self.eos_id}


def from_spec(spec: dict):
  if spec["kind"] == "bytes":
    return ByteTokenizer()
  if spec["kind"] == "sentencepiece":
    return SentencePieceTokenizer(base64.b64decode(spec["model"]))
  if spec["kind"] == "words":
    return WordTokenizer(spec["words"])
  if spec["kind"] == "huggingface":
    return HuggingFaceTokenizer(spec["json"], spec["eos_id"])
  raise ConfigError(f"Unknown tokenizer kind {spec['kind']!r}.")


def spec_id(spec: dict) -> str:
  """A short stable name for a tokenizer, used to key token caches."""
  return spec["kind"] + "_" + hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]


def build(kind: str, vocab_size: int, train_docs, cache_path: str):
  """The tokenizer `kind`; trained ones are fitted on `train_docs()` once and cached."""
  if kind == "bytes":
    return ByteTokenizer()
  if kind not in ("sentencepiece", "words"):
    raise ConfigError(f"data.tokenizer must be 'bytes', 'sentencepiece' or 'words', got {kind!r}.")
  path = f"{cache_path}.{kind}{vocab_size}.json"
  if storage.exists(path):
    return from_spec(json.loads(storage.read_bytes(path)))
  if kind == "sentencepiece" and vocab_size < 512:
    raise ConfigError("data.vocab_size must be at least 512 for sentencepiece (256 byte "
                      f"fallback pieces plus the corpus' characters), got {vocab_size}.")
  if kind == "words" and vocab_size < 3:
    raise ConfigError(f"data.vocab_size must be at least 3 for words, got {vocab_size}.")
  cls = SentencePieceTokenizer if kind == "sentencepiece" else WordTokenizer
  tok = cls.train(train_docs(), vocab_size)
  storage.makedirs(os.path.dirname(path))
  storage.write_atomic(path, json.dumps(tok.spec))
  return tok
