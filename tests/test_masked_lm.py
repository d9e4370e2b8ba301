"""Masked LM: the BERT masking recipe, span masking, token deletion, loss on chosen tokens."""
import chex
import jax
import jax.numpy as jnp
import numpy as np

from conftest import tiny_lm_config
from ssl_jax.models.gpt import Transformer
from ssl_jax.objectives import masked_lm, text_masking

V, MASK = 100, 100


def _tokens(shape=(64, 256)):
  return jax.random.randint(jax.random.key(0), shape, 0, V)


def test_bert_masking_statistics_match_the_recipe():
  tokens = _tokens()
  inputs, chosen = jax.jit(lambda k, t: text_masking.token_mask(k, t, MASK, V))(
      jax.random.key(1), tokens)
  tokens, inputs, chosen = map(np.asarray, (tokens, inputs, chosen))
  assert abs(chosen.mean() - 0.15) < 0.01
  np.testing.assert_array_equal(inputs[~chosen], tokens[~chosen])  # unchosen: untouched
  picked_in, picked_orig = inputs[chosen], tokens[chosen]
  masked = (picked_in == MASK).mean()
  kept = (picked_in == picked_orig).mean()
  random = ((picked_in != MASK) & (picked_in != picked_orig)).mean()
  assert abs(masked - 0.8) < 0.03 and abs(kept - 0.1) < 0.02 and abs(random - 0.1) < 0.02
  again, _ = text_masking.token_mask(jax.random.key(1), jnp.asarray(tokens), MASK, V)
  np.testing.assert_array_equal(again, inputs)  # deterministic per key


def test_span_masking_chooses_contiguous_spans():
  tokens = _tokens()
  _, chosen = text_masking.span_mask(jax.random.key(2), tokens, MASK, V, rate=0.15, span_length=3)
  chosen = np.asarray(chosen)
  assert 0.1 < chosen.mean() < 0.17
  runs = []
  for row in chosen:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(int), [0]])))
    runs += list(edges[1::2] - edges[::2])
  assert min(runs[1:-1]) >= 3 or np.mean(np.array(runs) >= 3) > 0.95


def test_token_deletion_keeps_order_and_pads_the_tail():
  tokens = _tokens((4, 50))
  out, valid = text_masking.delete_tokens(jax.random.key(3), tokens, 0.3, pad_id=-1)
  for row, o, v in zip(np.asarray(tokens), np.asarray(out), np.asarray(valid)):
    n = v.sum()
    assert 20 < n < 50 and v[:n].all() and not v[n:].any() and (o[n:] == -1).all()
    it = iter(row)  # the kept tokens are a subsequence of the original, in order
    assert all(any(x == y for y in it) for x in o[:n])


def test_loss_ignores_unchosen_positions():
  logits = jax.random.normal(jax.random.key(4), (2, 8, V))
  targets = jax.random.randint(jax.random.key(5), (2, 8), 0, V)
  chosen = jnp.zeros((2, 8), bool).at[:, ::3].set(True)
  noise = jax.random.normal(jax.random.key(6), logits.shape) * 5
  changed = jnp.where(chosen[..., None], logits, logits + noise)
  a = masked_lm.eval_sums(logits, targets, chosen, jnp.ones(V))
  b = masked_lm.eval_sums(changed, targets, chosen, jnp.ones(V))
  chex.assert_trees_all_close(a, b)
  assert float(a["tokens"]) == 6.0


def test_bert_encoder_is_bidirectional():
  model = Transformer(vocab_size=V + 1, max_len=16, num_layers=1, num_heads=2, width=32,
                      causal=False)
  tokens = _tokens((1, 16))
  params = model.init(jax.random.key(0), tokens)["params"]
  a = model.apply({"params": params}, tokens)
  b = model.apply({"params": params}, tokens.at[:, -1].set((tokens[:, -1] + 1) % V))
  assert not np.allclose(a[:, 0], b[:, 0], atol=1e-5)  # the first position sees the last


def test_masked_lm_trains(tmp_path, data_dir):
  import json
  from ssl_jax import train
  corpus = tmp_path / "c"
  corpus.mkdir()
  for i in range(3):
    (corpus / f"{i}.txt").write_text("import os\nimport sys\n" * 300)
  cfg = tiny_lm_config(str(corpus / "*.txt"), data_dir, total_steps=30, eval_every=30,
                       checkpoint_every=30, **{"model.name": "bert", "optim.lr": 1e-2})
  cfg.objective = "masked_lm"
  from configs import bert_tiny
  cfg.mlm = bert_tiny.get_config().mlm
  cfg.mlm.masking, cfg.mlm.deletion_rate = "span", 0.1
  train.train(cfg, str(tmp_path / "run"))
  rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
  first = [r for r in rows if r["split"] == "train"][0]["loss"]
  final = [r for r in rows if r["split"] == "eval"][-1]["loss"]
  assert final < 0.5 * first
