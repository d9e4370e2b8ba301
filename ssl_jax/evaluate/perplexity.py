"""Perplexity of a language model over its whole validation split.

The task is rebuilt from the checkpoint's config (so data, tokenizer and sequence length
are the ones it trained with), its evaluation batches are run to the end of the split,
and the eval sums (additive statistics) give exact corpus means.
"""
import functools
import math
import sys

import jax
import numpy as np

from ssl_jax.errors import ConfigError
from ssl_jax.eval_loop import InFlight
from ssl_jax.evaluate.uncertainty import Estimate

LANGUAGE_OBJECTIVES = ("next_token",)


def run(run, options) -> dict:
  if options.dataset:
    raise ConfigError(f"--dataset {options.dataset} is for the feature protocols; perplexity "
                      "reads the corpus of the run's config (--data_source).")
  from ssl_jax.tasks import make_task
  config = run.config
  objective = config.get("objective", "?")
  if objective not in LANGUAGE_OBJECTIVES:
    raise ConfigError(f"perplexity needs a language model (objective in "
                      f"{', '.join(LANGUAGE_OBJECTIVES)}); {run.workdir} trained {objective!r}.")
  config.eval_steps = 2 ** 31 - 1  # every evaluation batch, not the training-time subset
  task = make_task(config)
  from ssl_jax.data import fingerprint
  diff = fingerprint.difference(run.metadata, task.metadata)
  if diff is not None:  # allowed (a corpus of one's choice), but say so
    print(f"note: perplexity on other data than the run trained on:\n{diff}", file=sys.stderr,
          flush=True)
  if not task.eval_data:
    raise ConfigError("The validation split yields no evaluation batch.")
  per_batch = batch_sums(jax.jit(task.eval_sums), run.params, run.model_state, task.eval_data)
  total = functools.reduce(lambda a, b: jax.tree.map(np.add, a, b), per_batch)
  metrics = {k: float(v) for k, v in task.finalize_eval(total).items()}
  # Intervals resample the evaluation batches (whole windows of the corpus): each metric is
  # a ratio of sums over batches.
  nll, tokens, correct, nbytes = (np.array([b[k] for b in per_batch], np.float64)
                                  for k in ("nll", "tokens", "correct", "bytes"))
  metrics = {
      "loss": Estimate(nll, tokens, point=metrics["loss"]),
      "accuracy": Estimate(correct, tokens, point=metrics["accuracy"]),
      "bits_per_byte": Estimate(nll, nbytes, scale=1 / math.log(2),
                                point=metrics["bits_per_byte"]),
      "perplexity": Estimate(nll, tokens, exp=True, point=math.exp(metrics["loss"])),
      "tokens": float(total["tokens"])}
  return metrics


def batch_sums(eval_step, params, model_state, batches) -> list[dict]:
  """Each batch's eval sums, on the host; at most two computations in flight (InFlight)."""
  sums, in_flight = [], InFlight()
  for i, batch in enumerate(batches):
    sums.append(eval_step(params, model_state, batch))
    in_flight.add(sums[-1], f"evaluation batch {i + 1}/{len(batches)}")
  return jax.device_get(sums)
