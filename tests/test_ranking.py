"""Retrieval ranking pieces: exact ranks, blocking, pessimistic ties, metrics, TF-IDF, top-k."""
import numpy as np
import pytest

from ssl_jax.evaluate import ranking


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _embed_scores(scores_NxN, dim, seed=0):
  """Unit query and candidate vectors whose dot products are the rows of scores_NxN, each
  row divided by its norm (a positive scale per query: the ranks do not change)."""
  n = len(scores_NxN)
  basis_DxN, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, n)))
  cand_NxD = basis_DxN.T  # orthonormal rows: cand @ cand.T = I
  query_NxD = _unit(scores_NxN) @ cand_NxD
  return query_NxD.astype(np.float32), cand_NxD.astype(np.float32)


def _scores_with_ranks(ranks_N, seed=0):
  """A score matrix where query i's correct candidate i is the ranks_N[i]-th best, 0-based."""
  n = len(ranks_N)
  rng = np.random.default_rng(seed)
  levels_N = np.linspace(1.0, 0.1, n)  # distinct, best first
  scores_NxN = np.empty((n, n))
  for i, rank in enumerate(ranks_N):
    others = np.delete(levels_N, rank)
    scores_NxN[i, np.arange(n) != i] = rng.permutation(others)
    scores_NxN[i, i] = levels_N[rank]
  return scores_NxN


def _brute_ranks(query_NxD, cand_NxD):
  scores_NxN = np.asarray(query_NxD, np.float64) @ np.asarray(cand_NxD, np.float64).T
  correct_N = np.diag(scores_NxN)
  return (scores_NxN >= correct_N[:, None]).sum(1) - 1


WANT_RANKS = [0, 0, 1, 3, 3, 4, 5, 7, 9, 10, 12, 15, 2, 6, 8, 11]


def test_constructed_ranks_and_hand_computed_metrics():
  query_NxD, cand_NxD = _embed_scores(_scores_with_ranks(WANT_RANKS), dim=24)
  ranks_N = ranking.correct_ranks(query_NxD, cand_NxD, block=5)
  assert ranks_N.dtype == np.int64
  np.testing.assert_array_equal(ranks_N, WANT_RANKS)

  metrics = ranking.rank_metrics(ranks_N, prefix="q2c/")
  assert sorted(metrics) == sorted(
      ["q2c/recall@1", "q2c/recall@5", "q2c/recall@10", "q2c/mrr", "q2c/median_rank"])
  assert all(isinstance(v, float) for v in metrics.values())
  assert metrics["q2c/recall@1"] == 2 / 16  # ranks 0, 0
  assert metrics["q2c/recall@5"] == 7 / 16  # 0, 0, 1, 2, 3, 3, 4
  assert metrics["q2c/recall@10"] == 12 / 16  # those and 5, 6, 7, 8, 9
  reciprocal = (1 + 1 + 1 / 2 + 1 / 4 + 1 / 4 + 1 / 5 + 1 / 6 + 1 / 8 + 1 / 10 + 1 / 11 + 1 / 13
                + 1 / 16 + 1 / 3 + 1 / 7 + 1 / 9 + 1 / 12)
  assert metrics["q2c/mrr"] == pytest.approx(reciprocal / 16)
  # Sorted 1-based ranks: 1 1 2 3 4 4 5 6 | 7 8 9 10 11 12 13 16 -> between 6 and 7.
  assert metrics["q2c/median_rank"] == 6.5
  assert ranking.rank_metrics([0, 2, 4])["median_rank"] == 3.0  # no prefix; odd count


def test_blocked_equals_unblocked_and_brute_force():
  rng = np.random.default_rng(1)
  n = 37
  query_NxD = _unit(rng.normal(size=(n, 8))).astype(np.float32)
  # Candidates near their queries, so the ranks spread over 0..n-1 rather than all being 0.
  cand_NxD = _unit(query_NxD + 1.5 * rng.normal(size=(n, 8))).astype(np.float32)
  want_N = _brute_ranks(query_NxD, cand_NxD)
  assert 0 < (want_N == 0).sum() < n and want_N.max() > 10  # a spread of ranks
  for block in (1, 3, n, 1024):
    np.testing.assert_array_equal(ranking.correct_ranks(query_NxD, cand_NxD, block), want_N)
  # JAX arrays are accepted as well.
  import jax.numpy as jnp
  np.testing.assert_array_equal(
      ranking.correct_ranks(jnp.asarray(query_NxD), jnp.asarray(cand_NxD), 4), want_N)


def test_ties_count_against_the_correct_candidate():
  rng = np.random.default_rng(2)
  cand_NxD = _unit(rng.normal(size=(6, 16))).astype(np.float32)
  cand_NxD[1] = cand_NxD[0]
  cand_NxD[2] = cand_NxD[0]
  # Each query is its own candidate (score 1); candidates 0, 1, 2 tie at the top.
  ranks_N = ranking.correct_ranks(cand_NxD, cand_NxD, block=4)
  np.testing.assert_array_equal(ranks_N, [2, 2, 2, 0, 0, 0])


@pytest.mark.parametrize("block", [1, 7, 50])
def test_constant_embeddings_rank_last(block):
  n = 50
  const_NxD = np.tile(_unit(np.arange(1.0, 9.0)), (n, 1)).astype(np.float32)
  ranks_N = ranking.correct_ranks(const_NxD, const_NxD, block)
  np.testing.assert_array_equal(ranks_N, np.full(n, n - 1))
  metrics = ranking.rank_metrics(ranks_N)
  assert metrics["recall@1"] == 0.0 and metrics["recall@10"] == 0.0
  assert metrics["mrr"] == pytest.approx(1 / n)
  assert metrics["median_rank"] == n


def test_nan_scores_rank_last():
  rng = np.random.default_rng(3)
  emb_NxD = _unit(rng.normal(size=(5, 4))).astype(np.float32)
  broken_NxD = emb_NxD.copy()
  broken_NxD[1] = np.nan  # query 1 diverged: it is last; the others pass candidate 1 over it
  ranks_N = ranking.correct_ranks(broken_NxD, emb_NxD)
  assert ranks_N[1] == 4
  np.testing.assert_array_equal(np.delete(ranks_N, 1), 0)
  ranks_N = ranking.correct_ranks(emb_NxD, broken_NxD)  # candidate 1 scores NaN everywhere
  np.testing.assert_array_equal(ranks_N, [1, 4, 1, 1, 1])


def test_score_fn_ranks_equals_correct_ranks():
  rng = np.random.default_rng(4)
  n = 23
  query_NxD = _unit(rng.normal(size=(n, 6))).astype(np.float32)
  cand_NxD = _unit(query_NxD + rng.normal(size=(n, 6))).astype(np.float32)
  seen = []

  def score_block(rows):
    seen.append((rows.start, rows.stop))
    return query_NxD[rows].astype(np.float64) @ cand_NxD.T.astype(np.float64)

  ranks_N = ranking.score_fn_ranks(score_block, n, block=10)
  assert seen == [(0, 10), (10, 20), (20, 23)]
  np.testing.assert_array_equal(ranks_N, ranking.correct_ranks(query_NxD, cand_NxD))
  with pytest.raises(ValueError, match="shape"):
    ranking.score_fn_ranks(lambda rows: np.zeros((1, n)), n, block=10)


@pytest.mark.parametrize("text,words", [
    ("getHTTPResponse2", ["get", "http", "response"]),
    ("read_file", ["read", "file"]),
    ("XMLParser", ["xml", "parser"]),
    ("utf8Decode(x, y)", ["utf", "decode"]),
    ("Read a file, then return its lines.", ["read", "file", "then", "return", "its", "lines"]),
])
def test_identifier_words(text, words):
  assert ranking.identifier_words(text) == words


PAIRS = [
    ("Read a file and return its lines.",
     "def read_lines(path):\n  with open(path) as f:\n    return f.readlines()"),
    ("Parse an XML document into a tree.",
     "def parse_document(text):\n  return XMLParser().feed(text)"),
    ("Send an HTTP request and return the response.",
     "def fetch(url):\n  return getHTTPResponse2(url)"),
    ("Compute the mean of some numbers.",
     "def mean(values):\n  return sum(values) / len(values)"),
    ("Sort users by their age.",
     "def sort_users_by_age(users):\n  return sorted(users, key=lambda u: u.age)"),
    ("Write text to a path.",
     "def write_text(path, text):\n  open(path, 'w').write(text)"),
]


def test_tfidf_ranks_every_hand_made_pair_first():
  docs = [d for d, _ in PAIRS]
  codes = [c for _, c in PAIRS]
  # Here the pairs double as the fitting corpus: only the ranking is under test.
  np.testing.assert_array_equal(ranking.tfidf_ranks(docs + codes, docs, codes, block=4), 0)
  np.testing.assert_array_equal(ranking.tfidf_ranks(docs + codes, codes, docs), 0)
  # Swapped candidates: query 0 prefers candidate 0 (the XML code, sharing "return") to its
  # own, read_lines, which shares no word with query 1 and so ties last with the other zeros.
  swapped = [codes[1], codes[0]] + codes[2:]
  assert list(ranking.tfidf_ranks(docs + codes, docs, swapped)[:2]) == [1, 5]


def test_tfidf_idf_comes_from_fit_texts_only():
  queries = ["zebra config", "config report"]
  candidates = ["def config(): ...", "def zebra(): ..."]
  train = ["a config file", "save a report", "config and report"]
  # zebra (and def) never occur in the training texts: they give no weight, so candidate 1 is
  # an empty vector scoring 0: below the config candidate for query 0, and second for query 1
  # (whose config matches candidate 0).
  np.testing.assert_array_equal(ranking.tfidf_ranks(train, queries, candidates), [0, 1])
  # Fit on the pool itself, zebra counts and, rarer than config there, wins query 0.
  np.testing.assert_array_equal(ranking.tfidf_ranks(queries + candidates, queries, candidates),
                                [1, 1])
  # A query with no fitted word ties every candidate at 0: it ranks last.
  assert list(ranking.tfidf_ranks(train, ["zebra", "report"], ["zebra", "report"])) == [1, 0]


def test_tfidf_dampens_repeated_words():
  # Raw counts: candidate 0's eight alphas drown its beta (cosine 0.79 < 0.82 for candidate 1);
  # with sublinear tf (1 + ln 8 = 3.1 for alpha) it is the closer one (0.89).
  queries = ["alpha beta", "gamma"]
  candidates = ["alpha " * 8 + "beta", "alpha beta gamma"]
  np.testing.assert_array_equal(ranking.tfidf_ranks(["alpha beta gamma"], queries, candidates),
                                [0, 0])


def test_top_k_sorted_best_first_ties_by_index():
  cand_NxD = np.array([[1, 0], [0, 1], [0.6, 0.8], [0, 1], [-1, 0]], np.float32)
  query_QxD = np.array([[0, 1], [1, 0]], np.float32)
  idx_QxK, scores_QxK = ranking.top_k(query_QxD, cand_NxD, k=3)
  assert idx_QxK.dtype == np.int64 and scores_QxK.dtype == np.float32
  np.testing.assert_array_equal(idx_QxK, [[1, 3, 2], [0, 2, 1]])
  np.testing.assert_allclose(scores_QxK, [[1, 1, 0.8], [1, 0.6, 0]])
  idx_QxK, _ = ranking.top_k(query_QxD, cand_NxD, k=10)  # capped at N
  np.testing.assert_array_equal(idx_QxK[1], [0, 2, 1, 3, 4])
  # Three distinct candidates repeated in a shuffled order, long enough for an unstable sort
  # to reorder equal scores: the best one's copies come out in index order.
  which_N = np.random.default_rng(5).integers(0, 3, 300)
  idx_QxK, scores_QxK = ranking.top_k(query_QxD, cand_NxD[which_N], k=8)
  np.testing.assert_array_equal(idx_QxK[0], np.flatnonzero(which_N == 1)[:8])  # [0, 1] first
  np.testing.assert_array_equal(idx_QxK[1], np.flatnonzero(which_N == 0)[:8])  # [1, 0] first
  np.testing.assert_array_equal(scores_QxK, 1)
