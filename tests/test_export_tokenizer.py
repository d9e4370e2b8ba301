"""ssl_jax tokenizers exported as Hugging Face folders: AutoTokenizer (no custom code) gives
the same ids on mixed text and decodes them back, and the folders read back into ssl_jax."""
import json
import os
import unicodedata

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
os.environ["HF_HUB_OFFLINE"] = "1"

from ssl_jax.convert import tokenizer as convert_tokenizer  # noqa: E402
from ssl_jax.data import tokenizers  # noqa: E402
from ssl_jax.errors import ConfigError  # noqa: E402

KINDS = ("bytes", "words", "sentencepiece")
# Python's \w is str.isalnum() or "_", \s is str.isspace(); Oniguruma's differ on some of these.
EDGE_CHARS = ("e\u0301 \u0301x x\u0301", "x² ½ Ⅻ ٣ 三", "a‿b a_b a·b", "a\u00a0b\u2028c\u3000d",
              "\x1c\x1d\x1e\x1f", "a\u200bb \ufeff", "\u0903\u093f ि")
TEXTS = (
    "", " ", "\n", "  \t\n", "a", " leading", "trailing   ", "a  b\t\tc\n\n\nd\r\ne\r\n",
    "def f(x, *args, **kw):\n    return {'x': x ** 2}  # comment\n\n\tpass  \n",
    "café cafe\u0301 naïve Ångström",  # precomposed and combining accents
    "日本語の文章と中文 한국어", "😀 👍🏽 👨\u200d👩\u200d👧 🇫🇷",  # CJK, emoji sequences
    "שלום עולם مرحبا بالعالم 123",  # right to left
    "</s> <unk> <eos> <mask> <0x41> \u2581x \u2581\u2581",  # special tokens' spelling is text
    *EDGE_CHARS,
)


@pytest.fixture(scope="module")
def docs(corpus_dir):
  return [open(os.path.join(corpus_dir, name)).read() for name in sorted(os.listdir(corpus_dir))]


def _train(kind, docs):
  if kind == "bytes":
    return tokenizers.ByteTokenizer()
  if kind == "words":
    return tokenizers.WordTokenizer.train(docs, 3000)
  return tokenizers.SentencePieceTokenizer.train(docs, 512)


@pytest.fixture(scope="module", params=KINDS)
def exported(request, docs, tmp_path_factory):
  """(ssl_jax tokenizer, folder with its Hugging Face files and a mask token)."""
  tok = _train(request.param, docs)
  out = str(tmp_path_factory.mktemp(request.param))
  convert_tokenizer.save(tok.spec, out, extra_ids=1)
  return tok, out


def test_autotokenizer_gives_ssl_jax_ids(exported, docs):
  tok, out = exported
  hf = transformers.AutoTokenizer.from_pretrained(out)
  assert isinstance(hf, transformers.PreTrainedTokenizerFast)
  assert hf.eos_token_id == tok.eos_id
  for text in TEXTS + tuple(docs):
    ids = tok.encode(text).tolist()
    assert hf(text)["input_ids"] == ids, text  # the default call adds nothing
    assert hf.encode(text, add_special_tokens=False) == ids, text
    if tok.decode(ids) == text:  # words with unknown words do not round-trip in ssl_jax
      assert hf.decode(ids) == text, text
  # The round trip above ran on every text for bytes, on all but the one with U+2581 for
  # SentencePiece (it spells a space there), and on the training documents for words.
  decoded = {t for t in TEXTS + tuple(docs) if tok.decode(tok.encode(t)) == t}
  expected = {"bytes": set(TEXTS + tuple(docs)), "words": set(docs),
              "sentencepiece": {t for t in TEXTS + tuple(docs) if "\u2581" not in t}}[tok.kind]
  assert expected <= decoded


def test_mask_token_is_the_id_past_the_vocabulary(exported, tmp_path):
  tok, out = exported
  hf = transformers.AutoTokenizer.from_pretrained(out)
  assert hf.mask_token == "<mask>" and hf.mask_token_id == tok.vocab_size
  assert len(hf) == tok.vocab_size + 1
  assert hf.decode([tok.vocab_size]) == "<mask>"
  convert_tokenizer.save(tok.spec, str(tmp_path), extra_ids=0)
  plain = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
  assert plain.mask_token_id is None and len(plain) == tok.vocab_size


def test_words_split_like_python_re_on_every_character(tmp_path):
  tok = tokenizers.WordTokenizer(["a"])
  convert_tokenizer.save(tok.spec, str(tmp_path))
  hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
  split = hf.backend_tokenizer.pre_tokenizer.pre_tokenize_str
  for text in EDGE_CHARS:
    assert [w for w, _ in split(text)] == tokenizers.WordTokenizer._pattern.findall(text), text
  # Every assigned character once, in code point order (neighbours of every class).
  every = "".join(chr(c) for c in range(0x110000)
                  if unicodedata.category(chr(c)) not in ("Cn", "Co", "Cs"))
  assert [w for w, _ in split(every)] == tokenizers.WordTokenizer._pattern.findall(every)


def test_huggingface_kind_reads_an_exported_folder(exported, docs):
  tok, out = exported
  hf_tok = convert_tokenizer.load(out)  # no config.json: tokenizer.json as it is
  assert hf_tok.kind == "huggingface" and hf_tok.eos_id == tok.eos_id
  assert hf_tok.vocab_size == tok.vocab_size + 1  # the mask token
  again = tokenizers.from_spec(json.loads(json.dumps(hf_tok.spec)))
  for text in TEXTS + tuple(docs[:2]):
    ids = tok.encode(text)
    np.testing.assert_array_equal(hf_tok.encode(text), ids)
    np.testing.assert_array_equal(again.encode(text), ids)
    if tok.decode(ids) == text:
      assert again.decode(list(ids) + [tok.eos_id]) == text, text
  # Byte counts agree except where ssl_jax counts <unk> as an average word; special tokens 0.
  expected = np.append(tok.token_bytes, 0)
  if tok.kind == "words":
    expected[0] = 0
  np.testing.assert_array_equal(again.token_bytes, expected)


def test_load_prefers_the_spec_recorded_in_config_json(exported, docs):
  tok, out = exported
  with open(os.path.join(out, "config.json"), "w") as f:
    json.dump({"model_type": "gpt2", "ssl_jax": {"tokenizer": tok.spec}}, f)
  try:
    back = convert_tokenizer.load(out)
  finally:
    os.remove(os.path.join(out, "config.json"))
  assert back.spec == tok.spec
  np.testing.assert_array_equal(back.encode(docs[0]), tok.encode(docs[0]))


def test_load_names_what_is_missing(tmp_path, exported):
  with pytest.raises(ConfigError, match="tokenizer.json"):
    convert_tokenizer.load(str(tmp_path))
  _, out = exported
  (tmp_path / "tokenizer.json").write_text(open(os.path.join(out, "tokenizer.json")).read())
  with pytest.raises(ConfigError, match="eos"):
    convert_tokenizer.load(str(tmp_path))
  (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": 1}))
  assert convert_tokenizer.load(str(tmp_path)).eos_id == 1
