"""Ranking metrics of a retrieval evaluation over paired (query, candidate) embeddings.

Pair i's query is scored against every candidate of the held-out pool (all N of them; its own
candidate i is the correct one), and the rank of candidate i is the number of candidates
placed above it: 0 means retrieved first. Over the N queries:
  recall@k     the fraction whose correct candidate is among the k best (rank < k);
  mrr          mean reciprocal rank, mean(1 / (rank + 1)): 1.0 when always first, about
               ln(N) / N for a random ranking, so it rewards rank 0 over rank 4, unlike recall@5;
  median_rank  the median of the 1-based ranks.
No cut-off: the whole pool is ranked, so the numbers depend on N, and runs compare only on
the same pool.

Ties are broken against the correct candidate: a candidate whose score equals the correct
one's (within float32 rounding, TIE_ATOL) counts as ranked above it, and a NaN score ranks
last. An encoder that has collapsed to one output scores every candidate equally: ties broken
in the correct candidate's favour would give it recall@1 = 1.0, and broken by chance a noisy
1/N, while this rule gives it the worst rank, N - 1, for every query, deterministically.

The TF-IDF baseline says how far word overlap alone gets. Its IDF is fit on the training split
only: fitting on the held-out pool would let the pool's own word statistics (which words are
rare among exactly these candidates) into the baseline, a look at the test data the encoders
never had. Words that never occur in the training split get no weight.
"""
import re
from typing import Callable

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from ssl_jax.evaluate.uncertainty import Estimate

KS = (1, 5, 10)
# Scores are cosine similarities in [-1, 1]; two equal candidates may still differ in the last
# bits when a matmul sums them in different orders, so scores this close count as a tie.
TIE_ATOL = 1e-6

_LETTER_RUN = re.compile(r"[^\W\d_]+")  # letters only: splits on _, digits and punctuation
_CAMEL_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")  # HTTP|Response, XML|Parser, get


def _ranks_in_block(scores_QxN: np.ndarray, first: int) -> np.ndarray:
  """Pessimistic 0-based ranks of candidates first..first+Q-1 for the Q query rows."""
  rows_Q = np.arange(scores_QxN.shape[0])
  correct_Q = scores_QxN[rows_Q, first + rows_Q]
  # The correct candidate always counts itself (s >= s - tol, or its NaN), hence the - 1.
  ahead_QxN = (scores_QxN >= (correct_Q - TIE_ATOL)[:, None]) | np.isnan(scores_QxN)
  ahead_QxN |= np.isnan(correct_Q)[:, None]
  return ahead_QxN.sum(axis=1, dtype=np.int64) - 1


def score_fn_ranks(score_block: Callable[[slice], np.ndarray], n: int,
                   block: int = 1024) -> np.ndarray:
  """int64 [n] ranks of candidate i for query i; score_block(rows) gives the [q, n] score rows
  of the queries in rows (a slice), so only block x n scores exist at a time."""
  if n < 1 or block < 1:
    raise ValueError(f"need n >= 1 and block >= 1, got n={n}, block={block}")
  ranks_N = np.empty(n, np.int64)
  for start in range(0, n, block):
    rows = slice(start, min(start + block, n))
    scores_QxN = np.asarray(score_block(rows))
    want = (rows.stop - rows.start, n)
    if scores_QxN.shape != want:
      raise ValueError(f"score_block({rows}) gave shape {scores_QxN.shape}, expected {want}")
    ranks_N[rows] = _ranks_in_block(scores_QxN, start)
  return ranks_N


def correct_ranks(query_NxD, cand_NxD, block: int = 1024) -> np.ndarray:
  """int64 [N]: 0-based rank of candidate i among all N candidates for query i, by dot
  product (inputs L2-normalised), computed block x N scores at a time in float32."""
  query_NxD = np.asarray(query_NxD, np.float32)
  cand_NxD = np.asarray(cand_NxD, np.float32)
  if query_NxD.ndim != 2 or query_NxD.shape != cand_NxD.shape:
    raise ValueError(f"queries {query_NxD.shape} and candidates {cand_NxD.shape} must both be "
                     "[N, D] with the same N and D")
  cand_DxN = np.ascontiguousarray(cand_NxD.T)
  return score_fn_ranks(lambda rows: query_NxD[rows] @ cand_DxN, len(query_NxD), block)


def rank_metrics(ranks_N, prefix: str = "") -> dict:
  """recall@1/5/10, mrr and median_rank (1-based) of 0-based ranks, keys prefixed."""
  ranks_N = np.asarray(ranks_N, np.int64)
  if ranks_N.ndim != 1 or ranks_N.size == 0:
    raise ValueError(f"need a non-empty 1-D array of ranks, got shape {ranks_N.shape}")
  metrics = {f"{prefix}recall@{k}": Estimate(ranks_N < k) for k in KS}
  metrics[f"{prefix}mrr"] = Estimate(1.0 / (ranks_N + 1))
  metrics[f"{prefix}median_rank"] = float(np.median(ranks_N + 1))
  return metrics


def identifier_words(text: str) -> list[str]:
  """Lowercase words of >= 2 letters, identifiers split on _, camelCase and digits, so that
  "get the HTTP response" and getHTTPResponse2 share get, http, response."""
  words = []
  for run in _LETTER_RUN.findall(text):
    # Only ASCII runs are split on case: other scripts keep their words whole.
    parts = _CAMEL_PART.findall(run) if run.isascii() else [run]
    words.extend(p.lower() for p in parts if len(p) >= 2)
  return words


def tfidf_ranks(fit_texts: list[str], queries: list[str], candidates: list[str],
                block: int = 256) -> np.ndarray:
  """Ranks of candidate i for query i by TF-IDF cosine similarity, IDF fit on fit_texts (the
  training split of both sides, never the pool). Sparse throughout: only block x N scores
  are dense at a time."""
  if len(queries) != len(candidates):
    raise ValueError(f"{len(queries)} queries but {len(candidates)} candidates")
  vectorizer = TfidfVectorizer(analyzer=identifier_words, sublinear_tf=True, dtype=np.float32)
  vectorizer.fit(fit_texts)
  # Rows are L2-normalised, so their dot products are cosine similarities.
  query_NxV = vectorizer.transform(queries).tocsr()
  cand_VxN = vectorizer.transform(candidates).T.tocsc()
  return score_fn_ranks(lambda rows: (query_NxV[rows] @ cand_VxN).toarray(), len(queries),
                        block)


def top_k(query_QxD, cand_NxD, k: int) -> tuple[np.ndarray, np.ndarray]:
  """The k best candidates of each query by dot product, best first, ties by lower index:
  (indices int64 [Q, k], scores float32 [Q, k]); k is capped at N."""
  query_QxD = np.asarray(query_QxD, np.float32)
  cand_NxD = np.asarray(cand_NxD, np.float32)
  scores_QxN = query_QxD @ cand_NxD.T
  # A stable sort of the negated scores keeps equal scores in index order (NaN last).
  order_QxK = np.argsort(-scores_QxN, axis=1, kind="stable")[:, :k].astype(np.int64)
  return order_QxK, np.take_along_axis(scores_QxN, order_QxK, axis=1)
