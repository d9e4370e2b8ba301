"""Text data: builder splits, tokenizers, deterministic and checkpointable grain pipelines."""
import numpy as np
import pytest

from ssl_jax.data import pipeline, text, tokenizers
from ssl_jax.data.text_builder import LocalText, split_files
from ssl_jax.errors import DataError


def _cfg(corpus_dir, data_dir, **kw):
  import configs.gpt_tiny as base
  cfg = base.get_config().data
  cfg.source = f"{corpus_dir}/*.py"
  cfg.data_dir = data_dir
  cfg.update(kw)
  return cfg


def test_split_is_by_file_deterministic_and_disjoint():
  files = [f"pkg/mod{i}.py" for i in range(200)]
  a, b = split_files(files), split_files(list(reversed(sorted(files))))
  assert {k: set(v) for k, v in a.items()} == {k: set(v) for k, v in b.items()}
  assert set(a["train"]).isdisjoint(a["validation"])
  assert set(a["train"]) | set(a["validation"]) == set(files)
  assert 0 < len(a["validation"]) < 30


def test_builder_writes_array_record_splits(corpus_dir, data_dir):
  builder = LocalText(source=f"{corpus_dir}/*.py", data_dir=data_dir)
  builder.download_and_prepare()
  train, val = builder.as_data_source(split="train"), builder.as_data_source(split="validation")
  assert len(train) >= 1 and len(val) >= 1
  paths = {train[i]["path"] for i in range(len(train))} | {val[i]["path"] for i in range(len(val))}
  assert len(paths) == len(train) + len(val)
  assert b"def " in train[0]["text"] or b"def " in val[0]["text"]


def test_missing_corpus_is_a_data_error(tmp_path):
  with pytest.raises(DataError, match="matched 0 file"):
    LocalText(source=str(tmp_path / "nothing" / "*.txt"), data_dir=str(tmp_path))


@pytest.mark.parametrize("kind,vocab", [("bytes", 0), ("words", 300), ("sentencepiece", 600)])
def test_tokenizers_round_trip_and_count_bytes(corpus_dir, kind, vocab, tmp_path):
  docs = [open(f"{corpus_dir}/{n}").read() for n in ("decoder.py", "encoder.py")]
  tok = tokenizers.build(kind, vocab, lambda: iter(docs), str(tmp_path / "tok"))
  sample = "def scan(self, idx):\n    return idx + 1\n"
  ids = tok.encode(sample)
  assert ids.dtype == np.int32 and ids.max() < tok.vocab_size
  if kind != "words":  # the word vocabulary maps unknown words to <unk>
    assert tok.decode(ids) == sample
  assert tok.token_bytes[ids].sum() == pytest.approx(len(sample.encode()), rel=0.3)
  again = tokenizers.from_spec(tok.spec)
  np.testing.assert_array_equal(again.encode(sample), ids)


def _batches(ds, n):
  it = pipeline.to_iterator(ds)
  return [next(it)["tokens"] for _ in range(n)]


def test_pipeline_is_deterministic_per_seed(corpus_dir, data_dir):
  data = text.load(_cfg(corpus_dir, data_dir))
  count, rows = text.sequence_loader(data.train_tokens, 32)
  a = _batches(pipeline.global_batches(count, 4, rows, seed=0), 3)
  b = _batches(pipeline.global_batches(count, 4, rows, seed=0), 3)
  c = _batches(pipeline.global_batches(count, 4, rows, seed=1), 3)
  np.testing.assert_array_equal(np.stack(a), np.stack(b))
  assert not np.array_equal(np.stack(a), np.stack(c))
  assert a[0].shape == (4, 33)
  # Packed sequences are consecutive slices of the token stream.
  tokens = np.asarray(data.train_tokens)
  start = np.flatnonzero((tokens[: len(tokens) - 32] == a[0][0][0]))
  assert any(np.array_equal(tokens[s:s + 33], a[0][0]) for s in start)


def test_iterator_state_round_trips(corpus_dir, data_dir):
  data = text.load(_cfg(corpus_dir, data_dir))
  count, rows = text.sequence_loader(data.train_tokens, 32)
  ds = pipeline.global_batches(count, 4, rows, seed=3)
  it = pipeline.to_iterator(ds)
  for _ in range(5):
    next(it)
  state = it.get_state()
  want = [next(it)["tokens"] for _ in range(3)]
  fresh = pipeline.to_iterator(ds)
  fresh.set_state(state)
  got = [next(fresh)["tokens"] for _ in range(3)]
  np.testing.assert_array_equal(np.stack(got), np.stack(want))


def test_processes_read_disjoint_rows_of_the_same_global_batch(corpus_dir, data_dir):
  data = text.load(_cfg(corpus_dir, data_dir))
  count, rows = text.sequence_loader(data.train_tokens, 32)
  whole = _batches(pipeline.global_batches(count, 8, rows, seed=0, process_index=0,
                                           process_count=1), 2)
  parts = [_batches(pipeline.global_batches(count, 8, rows, seed=0, process_index=p,
                                            process_count=2), 2) for p in range(2)]
  for i in range(2):
    np.testing.assert_array_equal(np.concatenate([parts[0][i], parts[1][i]]), whole[i])


def test_evaluation_batches_sample_the_whole_split_whatever_the_seed(corpus_dir, data_dir):
  """Evaluation reads a fixed random sample of validation sequences: the first batches in
  file order would measure only the first file(s) and bias bits per byte."""
  from conftest import tiny_lm_config
  from ssl_jax.tasks import make_task
  tasks = [make_task(tiny_lm_config(f"{corpus_dir}/*.py", data_dir, seed=s, eval_steps=2))
           for s in (0, 1)]
  np.testing.assert_array_equal(np.stack([b["tokens"] for b in tasks[0].eval_data]),
                                np.stack([b["tokens"] for b in tasks[1].eval_data]))
  T = 32
  tokens = np.asarray(text.load(_cfg(corpus_dir, data_dir)).eval_tokens)
  count = (len(tokens) - 1) // T
  starts = {tuple(tokens[i * T:(i + 1) * T + 1]): i for i in range(count)}
  idx = [starts[tuple(row)] for b in tasks[0].eval_data for row in np.asarray(b["tokens"])]
  assert len(set(idx)) == len(idx) == 16
  assert idx != sorted(idx) and max(idx) > count // 2 and min(idx) < count // 2
