"""How sure an evaluation is: seeded bootstrap intervals over test examples, and over seeds.

A protocol returns a metric that is a mean (or a ratio of sums) over test items as an
`Estimate`: a float (the point value, so callers that compare or print it see a number)
that also holds the per-item values. `line()` turns a protocol's metrics into its JSON
line, adding `NAME_ci95: [low, high]` for every Estimate: the 2.5th and 97.5th percentiles
of the metric over RESAMPLES resamples of the test items drawn with replacement. The draws
depend only on the seed and the item count, so every metric of one line (the pretrained
encoder and its baselines) is resampled with the same draws.

For several runs of one config (ssl_jax.sweep), `pooled()` resamples the seeds and the test
items together (the runs share one test set, so one draw of items serves every seed) and
`difference()` does the same for two configs, paired over items, to say whether they differ
beyond both the seed-to-seed and the test-set noise.
"""
import math
import warnings

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
_CHUNK = 200  # resamples per block: bounds memory at _CHUNK x items


class Estimate(float):
  """A metric over N test items: value = scale * sum(values) / sum(denominators) (denominators
  default to 1: a mean), exponentiated if exp. `point` overrides the value computed from the
  items where the protocol already has it (the same number, summed in its own order)."""

  def __new__(cls, values, denominators=None, scale: float = 1.0, exp: bool = False,
              point: float | None = None):
    values = np.asarray(values, np.float64).reshape(-1)
    if values.size == 0:
      raise ValueError("an Estimate needs at least one test item")
    den = None if denominators is None else np.asarray(denominators, np.float64).reshape(-1)
    if den is not None and den.shape != values.shape:
      raise ValueError(f"values {values.shape} and denominators {den.shape} differ in shape")
    if point is None:
      point = _statistic(values.sum(), values.size if den is None else den.sum(), scale, exp)
    self = super().__new__(cls, point)
    self.values, self.denominators, self.scale, self.exp = values, den, scale, exp
    return self

  def __reduce__(self):  # copies stay Estimates
    return (Estimate, (self.values, self.denominators, self.scale, self.exp, float(self)))

  def resampled(self, counts_CxN) -> np.ndarray:
    """The metric under each row of item counts: [C]."""
    num = counts_CxN @ self.values
    den = counts_CxN.sum(1) if self.denominators is None else counts_CxN @ self.denominators
    return _statistic(num, den, self.scale, self.exp)

  def to_json(self) -> dict:
    out = {"value": float(self), "values": self.values.tolist()}
    if self.denominators is not None:
      out["denominators"] = self.denominators.tolist()
    if self.scale != 1.0 or self.exp:
      out.update(scale=self.scale, exp=self.exp)
    return out

  @classmethod
  def from_json(cls, d: dict) -> "Estimate":
    return cls(d["values"], d.get("denominators"), d.get("scale", 1.0), d.get("exp", False),
               d.get("value"))


def _statistic(num, den, scale, exp):
  with np.errstate(divide="ignore", invalid="ignore"):
    value = scale * np.asarray(num, np.float64) / np.maximum(den, 1e-300)
  value = np.exp(value) if exp else value
  return float(value) if np.ndim(value) == 0 else value


def _count_blocks(n: int, seed: int, resamples: int):
  """Blocks of item counts [C, n], each row a resample of n items with replacement."""
  rng = np.random.default_rng([seed % 2 ** 64, n])
  for start in range(0, resamples, _CHUNK):
    c = min(_CHUNK, resamples - start)
    yield rng.multinomial(n, np.full(n, 1.0 / n), size=c).astype(np.float64)


def _percentiles(samples, level: float = LEVEL) -> list[float]:
  low, high = np.quantile(np.asarray(samples), [(1 - level) / 2, (1 + level) / 2])
  return [float(low), float(high)]


def interval(estimate: Estimate, seed: int = 0, resamples: int = RESAMPLES,
             level: float = LEVEL) -> list[float]:
  """[low, high]: the percentile bootstrap interval of the metric over test items."""
  samples = np.concatenate([estimate.resampled(c) for c in _count_blocks(
      estimate.values.size, seed, resamples)])
  return _percentiles(samples, level)


def line(metrics: dict, seed: int = 0) -> tuple[dict, dict]:
  """(the protocol's JSON fields: floats and NAME_ci95 pairs, the Estimates by name)."""
  out, estimates = {}, {}
  for name, value in metrics.items():
    out[name] = float(value)
    if isinstance(value, Estimate):
      out[f"{name}_ci95"] = interval(value, seed)
      estimates[name] = value
  return out, estimates


def _seed_resampled(per_seed: list[Estimate], counts_CxN, rng) -> np.ndarray:
  """[C]: the mean over a resample of the seeds of each seed's metric under the item counts."""
  stats_SxC = np.stack([e.resampled(counts_CxN) for e in per_seed])
  S, C = stats_SxC.shape
  pick_CxS = rng.integers(0, S, (C, S))
  return stats_SxC[pick_CxS, np.arange(C)[:, None]].mean(1)


def _check_items(*groups):
  sizes = {e.values.size for group in groups for e in group}
  if len(sizes) != 1:
    raise ValueError(f"runs scored on test sets of different sizes {sorted(sizes)}: their "
                     "items cannot be resampled together")
  return sizes.pop()


def pooled(per_seed: list[Estimate], seed: int = 0, resamples: int = RESAMPLES,
           level: float = LEVEL) -> list[float]:
  """[low, high] for the mean over seeds: seeds and test items resampled together."""
  n = _check_items(per_seed)
  rng = np.random.default_rng([seed % 2 ** 64, n, len(per_seed)])
  samples = [_seed_resampled(per_seed, c, rng) for c in _count_blocks(n, seed, resamples)]
  return _percentiles(np.concatenate(samples), level)


def difference(a: list[Estimate], b: list[Estimate], seed: int = 0,
               resamples: int = RESAMPLES, level: float = LEVEL) -> dict:
  """mean(a) - mean(b) over seeds, with its bootstrap interval and two-sided p-value.

  Test items are resampled once for both sides (they are scored on the same items: paired);
  each side's seeds are resampled on their own. p is the bootstrap's two-sided p-value for
  "no difference": twice the smaller share of resampled differences on either side of 0.
  """
  n = _check_items(a, b)
  rng = np.random.default_rng([seed % 2 ** 64, n, len(a), len(b)])
  diffs = np.concatenate([_seed_resampled(a, c, rng) - _seed_resampled(b, c, rng)
                          for c in _count_blocks(n, seed, resamples)])
  observed = float(np.mean([float(e) for e in a]) - np.mean([float(e) for e in b]))
  below, above = int(np.sum(diffs <= 0)), int(np.sum(diffs >= 0))
  p = min(1.0, (2 * min(below, above) + 1) / (resamples + 1))
  return {"difference": observed, "ci95": _percentiles(diffs, level), "p": p}


def seeds_t_test(a: list[float], b: list[float]) -> float:
  """Welch's two-sided t-test over per-seed values; NaN when neither side varies."""
  from scipy import stats
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if len(a) < 2 or len(b) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
    return math.nan
  with warnings.catch_warnings():  # one side constant: scipy warns, the p-value stands
    warnings.simplefilter("ignore", RuntimeWarning)
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)
