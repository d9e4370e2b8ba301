"""Perplexity of a language model over its whole validation split.

The task is rebuilt from the checkpoint's config (so data, tokenizer and sequence length
are the ones it trained with), its evaluation batches are run to the end of the split,
and the eval sums (additive statistics) give exact corpus means.
"""
import math
import sys

import jax

from ssl_jax.errors import ConfigError
from ssl_jax.eval_loop import sum_batches

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
  total = jax.device_get(sum_batches(jax.jit(task.eval_sums), run.params, run.model_state,
                                     task.eval_data))
  metrics = {k: float(v) for k, v in task.finalize_eval(total).items()}
  metrics["perplexity"] = math.exp(metrics["loss"])
  metrics["tokens"] = float(total["tokens"]) if "tokens" in total else float("nan")
  return metrics
