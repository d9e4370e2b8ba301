"""Bootstrap intervals: against the analytic binomial interval, per seed and pooled, and the
two-config difference."""
import json
import math

import numpy as np
import pytest

from ssl_jax.evaluate import uncertainty
from ssl_jax.evaluate.uncertainty import Estimate


def test_accuracy_interval_matches_the_binomial_interval():
  n, correct = 1000, 700
  estimate = Estimate(np.arange(n) < correct)
  assert float(estimate) == 0.7
  low, high = uncertainty.interval(estimate, seed=0)
  half = 1.959964 * math.sqrt(0.7 * 0.3 / n)  # Wald: the bootstrap's large-n limit
  assert low == pytest.approx(0.7 - half, abs=0.004)
  assert high == pytest.approx(0.7 + half, abs=0.004)
  assert uncertainty.interval(estimate, seed=0) == [low, high]  # seeded
  assert uncertainty.interval(estimate, seed=1) != [low, high]


def test_ratio_interval_and_exponent():
  rng = np.random.default_rng(0)
  nll, tokens = rng.uniform(50, 150, 400), np.full(400, 100.0)
  loss = Estimate(nll, tokens)
  assert float(loss) == pytest.approx(nll.sum() / tokens.sum())
  low, high = uncertainty.interval(loss)
  se = nll.std() / 100 / math.sqrt(400)
  assert high - low == pytest.approx(2 * 1.96 * se, rel=0.1)
  perplexity = Estimate(nll, tokens, exp=True)
  assert uncertainty.interval(perplexity) == pytest.approx([math.exp(low), math.exp(high)])


def test_json_line_has_intervals_and_round_trips():
  fields, estimates = uncertainty.line({"top1": Estimate([1, 0, 1, 1]), "l2": 0.1}, seed=3)
  assert fields["top1"] == 0.75 and fields["l2"] == 0.1 and "l2_ci95" not in fields
  low, high = fields["top1_ci95"]
  assert 0 <= low <= 0.75 <= high <= 1
  back = Estimate.from_json(json.loads(json.dumps(estimates["top1"].to_json())))
  assert float(back) == 0.75 and back.values.tolist() == [1, 0, 1, 1]


def test_pooled_interval_widens_with_seed_noise():
  rng = np.random.default_rng(1)
  base = rng.random(500) < 0.6
  same = [Estimate(base)] * 3
  # Three seeds that disagree: each flips a different 10% of the items.
  noisy = [Estimate(np.where(rng.random(500) < 0.1, ~base, base)) for _ in range(3)]
  single = uncertainty.interval(same[0])
  assert uncertainty.pooled(same) == pytest.approx(single, abs=1e-9)
  low, high = uncertainty.pooled(noisy)
  assert low <= np.mean([float(e) for e in noisy]) <= high


def test_difference_flags_a_planted_gap_and_not_identical_runs():
  rng = np.random.default_rng(2)
  a = [Estimate(rng.random(600) < 0.6) for _ in range(3)]
  same = uncertainty.difference(a, a)
  assert same["difference"] == 0.0 and same["p"] == 1.0
  assert same["ci95"][0] <= 0.0 <= same["ci95"][1]
  better = [Estimate(np.where(rng.random(600) < 0.3, True, e.values > 0)) for e in a]
  planted = uncertainty.difference(better, a)
  assert planted["difference"] > 0.08 and planted["p"] < 0.01 and planted["ci95"][0] > 0
  with pytest.raises(ValueError, match="different sizes"):
    uncertainty.difference(a, [Estimate([1, 0])])
