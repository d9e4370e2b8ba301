"""Evaluations of a trained checkpoint: python -m ssl_jax.evaluate --workdir DIR --protocol P.

Two registries keep this pluggable:
  PROTOCOLS  protocol name -> "module:function", function(run: Run, options) -> metrics
  SOURCES    config.objective -> "module:function", function(run, options) -> Transfer
             (evaluate/transfer.py): what the feature protocols (linear, knn, fewshot,
             finetune) evaluate. A new pretraining objective plugs in by adding its
             source here; the protocols do not change.
"""
import dataclasses
import importlib
import time

import ml_collections

from ssl_jax.errors import ConfigError

PROTOCOLS = {
    "linear": "ssl_jax.evaluate.linear:run",
    "knn": "ssl_jax.evaluate.knn:run",
    "fewshot": "ssl_jax.evaluate.fewshot:run",
    "finetune": "ssl_jax.evaluate.finetune:run",
    "perplexity": "ssl_jax.evaluate.perplexity:run",
}

# Image encoders: the source finds the encoder via metadata["encoder_path"].
SOURCES = {
    "simclr": "ssl_jax.evaluate.images:transfer",
    "byol": "ssl_jax.evaluate.images:transfer",
    # Text encoders, on the stdlib-packages task (data/stdlib_packages.py).
    "next_token": "ssl_jax.evaluate.text:transfer",
    "masked_lm": "ssl_jax.evaluate.text:transfer",
}


@dataclasses.dataclass(frozen=True)
class Options:
  seed: int = 0
  baselines: bool = True  # also evaluate the raw-input and random-init baselines
  batch_size: int = 256  # for feature extraction and fine-tuning
  max_train_examples: int = 0  # 0 = the whole labelled split
  max_test_examples: int = 0
  finetune_steps: int = 500
  finetune_lr: float = 1e-3


@dataclasses.dataclass
class Run:
  """A trained checkpoint as protocols see it."""
  workdir: str
  step: int
  params: object
  model_state: object
  metadata: dict
  config: ml_collections.ConfigDict


def _resolve(registry: dict, name: str):
  module, function = registry[name].split(":")
  return getattr(importlib.import_module(module), function)


def load_run(workdir: str) -> Run:
  from ssl_jax.checkpoint import load_latest
  step, state, metadata = load_latest(workdir)  # ConfigError if there is none
  if "config" not in metadata:
    raise ConfigError(f"The checkpoint in {workdir} has no config in its metadata.")
  return Run(workdir, int(step), state["params"], state.get("model_state", {}), metadata,
             ml_collections.ConfigDict(metadata["config"]))


def transfer_for(run: Run, options: Options):
  """The Transfer (encoder + labelled data) of a run, from the source of its objective."""
  objective = run.config.get("objective", "?")
  if objective not in SOURCES:
    raise ConfigError(
        f"No transfer source for objective {objective!r}: the feature protocols cannot read this "
        f"checkpoint (sources exist for {', '.join(SOURCES)}; add one to SOURCES in "
        "ssl_jax/evaluate/__init__.py).")
  return _resolve(SOURCES, objective)(run, options)


def evaluate(workdir: str, protocol: str, options: Options = Options()) -> dict:
  """{"step", "split": protocol, metrics..., "total_seconds"} for the newest checkpoint."""
  if protocol not in PROTOCOLS:
    raise ConfigError(f"Unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}.")
  run_fn = _resolve(PROTOCOLS, protocol)  # import before loading: fail fast on a typo
  run = load_run(workdir)
  start = time.time()
  metrics = run_fn(run, options)
  return {"step": run.step, "split": protocol,
          **{k: float(v) for k, v in metrics.items()}, "total_seconds": time.time() - start}
