"""Retrieval of a two-tower run (CLIP, SigLIP): --protocol retrieval.

Both towers embed every pair of the held-out split (the run's data.eval_split); each
query is ranked against the whole split as the candidate pool, in both directions
(text -> code and code -> text, or text -> image and image -> text). Metrics
(evaluate/ranking.py): recall@1, 5, 10, MRR and median rank, named SIDE_to_SIDE_METRIC.
Baselines, prefixed: "random_init_" (the same towers freshly initialised) and, for text
pairs, "tfidf_" (a bag of words weighted by IDF from the training split).
--show N prints N queries with their top matches, for a person to read.
"""
import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import checkpoint_metadata
from ssl_jax.errors import ConfigError
from ssl_jax.evaluate import ranking
from ssl_jax.evaluate.transfer import prefixed

SHOW_MATCHES = 3  # matches printed per query with --show


def towers(run):
  """(TwoTower model, tokenizer) of a two-tower run, rebuilt from its config and metadata."""
  from ssl_jax.tasks import TWO_TOWER_OBJECTIVES
  from ssl_jax.tasks import two_tower
  config = run.config
  objective = config.get("objective", "?")
  if objective not in TWO_TOWER_OBJECTIVES:
    raise ConfigError(f"{run.workdir} trained {objective!r}; retrieval and zero-shot evaluate "
                      f"two-tower runs ({', '.join(TWO_TOWER_OBJECTIVES)}).")
  tok = checkpoint_metadata.tokenizer(run.metadata)
  vocab = run.metadata.get("vocab_size", tok.vocab_size)
  model = two_tower.build_model(config, run.metadata.get("text_vocab_size", vocab),
                                run.metadata.get("pair_vocab_size", vocab))
  return model, tok


def embedder(model, side: str):
  """jit(variables, inputs) -> L2-normalised float32 embeddings of one side."""
  from ssl_jax.tasks.two_tower import pair_input
  method = model.embed_text if side == "text" else model.embed_pair

  @jax.jit
  def embed(variables, inputs):
    inputs = inputs if side == "text" else pair_input(inputs)
    z = model.apply(variables, inputs, train=False, method=method).astype(jnp.float32)
    return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)

  return embed


def embed_split(model, variables, count: int, load_rows, batch_size: int) -> dict:
  """{"text": [N, E], "pair": [N, E]} numpy embeddings of a whole split."""
  fns = {side: embedder(model, side) for side in ("text", "pair")}
  out = {side: [] for side in fns}
  for start in range(0, count, batch_size):
    rows = load_rows(np.arange(start, min(start + batch_size, count)))
    for side, fn in fns.items():
      out[side].append(np.asarray(fn(variables, rows[side])))
  return {side: np.concatenate(parts) for side, parts in out.items()}


def directions(data) -> list:
  """(query side, candidate side, metric prefix) in both directions."""
  a, b = data.sides
  return [("text", "pair", f"{a}_to_{b}_"), ("pair", "text", f"{b}_to_{a}_")]


def run(run, options) -> dict:
  if options.dataset:
    raise ConfigError(f"--dataset {options.dataset} is for the feature and zero-shot protocols; "
                      "retrieval ranks the held-out pairs of the run's own data "
                      "(--data_source, --data_dir).")
  from ssl_jax.data import pairs
  model, tok = towers(run)
  data = pairs.load(run.config.data, tokenizer_spec=tok.spec)
  split = run.config.data.eval_split
  count, load_rows = data.loader(split)
  if count < 2:
    raise ConfigError(f"The {split!r} split has {count} pair(s): nothing to rank.")
  variables = {"params": run.params, **run.model_state}
  runs = {"": variables}
  if options.baselines:
    from ssl_jax.tasks.two_tower import dummy_inputs
    runs["random_init"] = model.init(jax.random.key(options.seed),
                                     *dummy_inputs(run.config), train=False)
  metrics = {"pairs": float(count)}
  held_out = data.raw(split)  # (texts, code texts or None, ids): read once
  for name, variables in runs.items():
    z = embed_split(model, variables, count, load_rows, options.batch_size)
    for query, candidate, prefix in directions(data):
      ranks = ranking.correct_ranks(z[query], z[candidate])
      metrics.update(prefixed(name, ranking.rank_metrics(ranks, prefix)))
    if name == "" and options.show:
      show(data, held_out, z, options.show, options.seed)
  texts, pair_texts, _ = held_out
  if options.baselines and pair_texts is not None:
    fit_text, fit_pairs, _ = data.raw(run.config.data.train_split)
    raw = {"text": texts, "pair": pair_texts}
    for query, candidate, prefix in directions(data):
      ranks = ranking.tfidf_ranks(fit_text + fit_pairs, raw[query], raw[candidate])
      metrics.update(prefixed("tfidf", ranking.rank_metrics(ranks, prefix)))
  return metrics


def _line(text: str, limit: int = 100) -> str:
  text = " ".join(str(text).split())
  return text if len(text) <= limit else text[:limit - 3] + "..."


def show(data, held_out: tuple, z: dict, n: int, seed: int):
  """Prints n queries (drawn with seed) of each direction with their top matches; a '*'
  marks the right one. held_out: data.raw of the ranked split."""
  texts, pair_texts, ids = held_out
  shown = {"text": texts, "pair": pair_texts if pair_texts is not None else ids}
  picks = np.sort(np.random.default_rng(seed).permutation(len(texts))[:n])
  lines = []
  for query, candidate, prefix in directions(data):
    top, scores = ranking.top_k(z[query][picks], z[candidate], SHOW_MATCHES)
    lines.append(f"== {prefix[:-1].replace('_', ' ')}: top {SHOW_MATCHES} of {len(texts)}")
    for row, i in enumerate(picks):
      lines.append(f"query {ids[i]}: {_line(shown[query][i])}")
      for j, score in zip(top[row], scores[row]):
        mark = "*" if j == i else " "
        lines.append(f"  {mark} {score:+.3f}  {_line(shown[candidate][j])}")
      if i not in top[row]:  # where the right one is (1-based; ties count against it)
        scores_N = z[candidate] @ z[query][i]
        rank = int(np.sum(scores_N >= scores_N[i] - ranking.TIE_ATOL))
        lines.append(f"    the right one is at rank {rank}: {_line(shown[candidate][i])}")
  print("\n".join(lines), flush=True)
