"""ssl_jax tokenizers as Hugging Face tokenizer files, and back.

`save` writes tokenizer.json (the `tokenizers` library's format) and tokenizer_config.json
(tokenizer_class PreTrainedTokenizerFast) so that `AutoTokenizer.from_pretrained(dir)`, with
no custom code, gives for any text exactly the ids of the ssl_jax tokenizer, with nothing
added: the files declare no BOS/EOS and no post-processor, so add_special_tokens=True (the
default) and False agree. Each kind maps to a tokenizer.json pipeline:

  bytes          ByteLevel pre-tokenizer (no regex split, no prefix space) and a BPE model
                 with the 256 byte characters as ids 0..255 and no merges; eos "<eos>" = 256.
  sentencepiece  The model's own pieces and ids in a byte-fallback BPE whose merges are
                 ranked by piece score, as sentencepiece's BPE merges them; the normalizer
                 adds the dummy prefix and turns spaces into U+2581 over the whole text. The
                 user-defined "\\n" is an ordinary single-character piece: no merge makes it.
  words          WordLevel over ["<unk>", "<eos>", words...] after a Split on Python's
                 \\w+|\\s+|[^\\w\\s], its classes spelled out code point by code point
                 (Oniguruma's \\w takes combining marks and "‿", its \\s leaves out
                 \\x1c-\\x1f); decoded by plain concatenation.

Special tokens (eos, unk, the mask token) are registered, but tokenizer_config.json sets
split_special_tokens=True: their literal spelling in text ("</s>") is encoded as text, as
ssl_jax does. `extra_ids=1` registers "<mask>" at id vocab_size (BERT's mask id).

`load` reads a folder back: the exact ssl_jax tokenizer when config.json records its spec
(what an export writes), else the folder's tokenizer.json as the "huggingface" kind.
"""
import base64
import json
import re

from ssl_jax import storage
from ssl_jax.data import tokenizers
from ssl_jax.errors import ConfigError

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
MASK_TOKEN = "<mask>"
BYTES_EOS = "<eos>"
_SPIECE_SPACE = "\u2581"
_SURROGATES = (0xD800, 0xE000)  # not characters: Rust strings (and tokenizer.json) hold none


def save(spec: dict, out_dir: str, extra_ids: int = 0):
  """Writes tokenizer.json and tokenizer_config.json for the tokenizer `spec` into out_dir."""
  from tokenizers import AddedToken
  tok = tokenizers.from_spec(spec)
  build = {"bytes": _bytes, "sentencepiece": _sentencepiece, "words": _words}.get(spec["kind"])
  if build is None:
    raise ConfigError(f"A {spec['kind']!r} tokenizer has no Hugging Face export; "
                      "bytes, sentencepiece and words do.")
  if extra_ids not in (0, 1):
    raise ConfigError(f"extra_ids={extra_ids}: only one extra id (the mask token) is mapped.")
  hf, special = build(spec, tok)
  if extra_ids:
    special["mask_token"] = MASK_TOKEN
  # eos and unk are in the model's vocabulary and keep their ids; the mask token, in none,
  # takes the next one: vocab_size.
  hf.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special.values()])
  assert hf.token_to_id(special["eos_token"]) == tok.eos_id
  assert not extra_ids or hf.token_to_id(MASK_TOKEN) == tok.vocab_size
  config = {
      "tokenizer_class": "PreTrainedTokenizerFast",
      **special,
      "add_bos_token": False,
      "add_eos_token": False,
      "split_special_tokens": True,
      "clean_up_tokenization_spaces": False,
  }
  storage.makedirs(out_dir)
  storage.write_atomic(storage.join(out_dir, TOKENIZER_FILE), hf.to_str(pretty=True))
  storage.write_atomic(storage.join(out_dir, TOKENIZER_CONFIG_FILE),
                       json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def load(path: str):
  """The tokenizer of a Hugging Face folder; ConfigError if it has none.

  The ssl_jax tokenizer recorded in config.json ("ssl_jax": {"tokenizer": spec}) when there is
  one, so an exported folder reads back exactly; else tokenizer.json as the "huggingface"
  kind, its eos from tokenizer_config.json's eos_token or config.json's eos_token_id.
  """
  config = _read_json(storage.join(path, "config.json")) or {}
  spec = (config.get("ssl_jax") or {}).get("tokenizer")
  if spec:
    return tokenizers.from_spec(spec)
  json_path = storage.join(path, TOKENIZER_FILE)
  if not storage.exists(json_path):
    raise ConfigError(f"{path} holds no tokenizer: neither {TOKENIZER_FILE} nor a config.json "
                      "with an ssl_jax.tokenizer spec (sentencepiece-only tokenizer.model "
                      "folders are not read).")
  text = storage.read_bytes(json_path).decode("utf-8")
  return tokenizers.HuggingFaceTokenizer(text, _eos_id(path, text, config))


def _eos_id(path, tokenizer_json: str, config: dict) -> int:
  from tokenizers import Tokenizer
  eos = (_read_json(storage.join(path, TOKENIZER_CONFIG_FILE)) or {}).get("eos_token")
  if isinstance(eos, dict):  # a serialised AddedToken
    eos = eos.get("content")
  if isinstance(eos, str):
    eos_id = Tokenizer.from_str(tokenizer_json).token_to_id(eos)
    if eos_id is not None:
      return eos_id
  eos_id = config.get("eos_token_id")
  if isinstance(eos_id, list) and eos_id:  # some models list several; the first ends text
    eos_id = eos_id[0]
  if isinstance(eos_id, int):
    return eos_id
  raise ConfigError(f"{path}: the tokenizer names no end-of-text token (eos_token in "
                    f"{TOKENIZER_CONFIG_FILE}, or eos_token_id in config.json); ssl_jax "
                    "separates documents with it.")


def _read_json(path):
  return json.loads(storage.read_bytes(path)) if storage.exists(path) else None


def _bytes(spec, tok):
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers
  vocab = {c: b for b, c in enumerate(_byte_chars())}
  vocab[BYTES_EOS] = tok.eos_id
  hf = Tokenizer(models.BPE(vocab=vocab, merges=[]))
  # The whole text is one word of byte characters: no regex split, no prefix space.
  hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
  hf.decoder = decoders.ByteLevel()
  return hf, {"eos_token": BYTES_EOS}


def _byte_chars() -> list[str]:
  """The character ByteLevel writes for each byte: itself if printable Latin-1, else the
  next unused code point from 256 on (GPT-2's table)."""
  printable = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
  chars, shifted = [], 256
  for b in range(256):
    if b in printable:
      chars.append(chr(b))
    else:
      chars.append(chr(shifted))
      shifted += 1
  return chars


def _sentencepiece(spec, tok):
  from sentencepiece import sentencepiece_model_pb2
  from tokenizers import Tokenizer, decoders, models, normalizers
  proto = sentencepiece_model_pb2.ModelProto.FromString(base64.b64decode(spec["model"]))
  types = sentencepiece_model_pb2.ModelProto.SentencePiece
  norm, trainer = proto.normalizer_spec, proto.trainer_spec
  # The settings SentencePieceTokenizer.train uses; the pipeline below is exact for these.
  if (trainer.model_type != trainer.BPE or not trainer.byte_fallback
      or norm.name != "identity" or norm.remove_extra_whitespaces
      or not norm.escape_whitespaces or trainer.treat_whitespace_as_suffix
      or any(len(s) != 1 for s in trainer.user_defined_symbols)):
    raise ConfigError("Only ssl_jax's own SentencePiece settings (BPE, byte fallback, identity "
                      "normalization, single-character user symbols) export to tokenizer.json.")
  vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
  # sentencepiece merges the adjacent pair whose concatenation is the best-scoring piece it
  # knows (normal, user-defined); BPE merges the lowest-ranked pair: rank every split of
  # every normal piece by that piece's score.
  mergeable = {p.piece for p in proto.pieces if p.type in (types.NORMAL, types.USER_DEFINED)}
  ranked = []
  for i, p in enumerate(proto.pieces):
    if p.type != types.NORMAL:
      continue
    for k in range(1, len(p.piece)):
      left, right = p.piece[:k], p.piece[k:]
      if left in mergeable and right in mergeable:
        ranked.append((-p.score, i, vocab[left], (left, right)))
  merges = [pair for *_, pair in sorted(ranked)]
  unk = proto.pieces[trainer.unk_id].piece
  hf = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True,
                            byte_fallback=True))
  steps = [normalizers.Replace(" ", _SPIECE_SPACE)]
  if norm.add_dummy_prefix:  # one U+2581 before the whole text, even one that starts with a space
    steps.insert(0, normalizers.Prepend(_SPIECE_SPACE))
  hf.normalizer = normalizers.Sequence(steps)
  hf.decoder = decoders.Sequence(
      [decoders.Replace(_SPIECE_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
      + ([decoders.Strip(" ", 1, 0)] if norm.add_dummy_prefix else []))
  return hf, {"eos_token": proto.pieces[tok.eos_id].piece, "unk_token": unk}


def _words(spec, tok):
  from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
  hf = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(tok.words)},
                                  unk_token=tok.words[0]))
  word, space = _python_class(r"\w"), _python_class(r"\s")
  pattern = f"[{word}]+|[{space}]+|[^{word}{space}]"
  hf.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
  hf.decoder = decoders.Fuse()
  return hf, {"eos_token": tok.words[tok.eos_id], "unk_token": tok.words[0]}


def _python_class(pattern: str) -> str:
  """The body of an Oniguruma character class holding exactly the characters that Python's
  `re` matches with the one-character `pattern`, as \\x{..} ranges."""
  ranges = []
  for lo, hi in ((0, _SURROGATES[0]), (_SURROGATES[1], 0x110000)):
    text = "".join(map(chr, range(lo, hi)))
    ranges += [(lo + m.start(), lo + m.end() - 1) for m in re.finditer(f"(?:{pattern})+", text)]
  return "".join(f"\\x{{{a:X}}}" + (f"-\\x{{{b:X}}}" if b > a else "") for a, b in ranges)
