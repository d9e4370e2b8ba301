"""Evaluations of a trained checkpoint: python -m ssl_jax.evaluate --workdir DIR --protocol P.

Two registries keep this pluggable:
  PROTOCOLS  protocol name -> "module:function", function(run: Run, options) -> metrics
  SOURCES    config.objective -> "module:function", function(run, options) -> Transfer
             (evaluate/transfer.py): what the feature protocols (linear, linear_sgd, knn,
             fewshot, finetune) evaluate. A new pretraining objective plugs in by adding
             its source here; the protocols do not change.

A source probes the encoder on the data of its run unless Options.dataset names another
(evaluate/datasets.py: stdlib, packages:DIR, images:DIR, tfds:NAME).

Data paths come from Options (the command line), never from the checkpoint: its metadata
is validated (checkpoint_metadata.py) and its data.source / data.data_dir are replaced.
"""
import dataclasses
import importlib
import sys
import time

import ml_collections

from ssl_jax.errors import ConfigError

PROTOCOLS = {
    "linear": "ssl_jax.evaluate.linear:run",
    "linear_sgd": "ssl_jax.evaluate.linear_sgd:run",
    "knn": "ssl_jax.evaluate.knn:run",
    "fewshot": "ssl_jax.evaluate.fewshot:run",
    "finetune": "ssl_jax.evaluate.finetune:run",
    "perplexity": "ssl_jax.evaluate.perplexity:run",
    "retrieval": "ssl_jax.evaluate.retrieval:run",  # two-tower runs (CLIP, SigLIP)
    "zeroshot": "ssl_jax.evaluate.zeroshot:run",  # image-text runs, class-name prompts
}

from ssl_jax.tasks import IMAGE_OBJECTIVES  # noqa: E402

# Image encoders: the source finds the encoder via metadata["encoder_path"].
SOURCES = {
    **{name: "ssl_jax.evaluate.image_transfer:transfer" for name in IMAGE_OBJECTIVES},
    # An image encoder imported from a Hugging Face folder (--init_from).
    "image_encoder": "ssl_jax.evaluate.image_transfer:transfer",
    # Text encoders, on a package-classification task (data/stdlib_packages.py).
    "next_token": "ssl_jax.evaluate.text_transfer:transfer",
    "masked_lm": "ssl_jax.evaluate.text_transfer:transfer",
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
  # Where the data live: a text corpus glob ("" = the built-in "stdlib" corpus) or an
  # image folder, and the TFDS data directory ("" = $TFDS_DATA_DIR or ~/tensorflow_datasets).
  data_source: str = ""
  data_dir: str = ""
  # The labelled data the encoder is probed on (evaluate/datasets.py); "" = the run's own.
  dataset: str = ""
  # Weights to evaluate instead of the workdir's newest checkpoint: an ssl_jax workdir
  # (DIR or DIR:STEP) or a Hugging Face folder (ssl_jax/init_from.py).
  init_from: str = ""
  # A split's features above this size are extracted into a file-backed array (in $TMPDIR).
  feature_memory_mb: float = 2048.0
  # The linear_sgd protocol (evaluate/linear_sgd.py).
  probe_epochs: int = 90
  probe_lr: float = 0.1
  probe_batch_size: int = 256
  # The retrieval protocol: print this many queries with their top matches.
  show: int = 0
  # The zeroshot protocol: the text each class name is put into.
  prompt: str = "a photo of a {}."


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


def load_run(workdir: str, options: Options = Options()) -> Run:
  """The newest readable checkpoint (or the weights at options.init_from), its metadata
  validated, data paths from `options`."""
  from ssl_jax import checkpoint_metadata
  from ssl_jax.checkpoint import load_latest
  if options.init_from:
    step, state, metadata = _weights_from(options)
  else:
    step, state, metadata = load_latest(workdir)  # ConfigError if there is none
  if "config" not in metadata:
    raise ConfigError(f"The checkpoint in {workdir} has no config in its metadata.")
  metadata = checkpoint_metadata.check(metadata)
  config, recorded = checkpoint_metadata.local_config(
      metadata["config"], _data_source(metadata["config"], options), options.data_dir)
  _note_paths_not_followed(recorded, config)
  return Run(workdir, int(step), state["params"], state.get("model_state", {}), metadata,
             config)


def _weights_from(options: Options):
  """(step, state, metadata) as a checkpoint holds them, for the weights at --init_from: a
  workdir (DIR or DIR:STEP) or a Hugging Face folder (ssl_jax/init_from.py)."""
  from ssl_jax import init_from
  source = init_from.read(options.init_from)
  params = source.variables["params"]
  model_state = {k: v for k, v in source.variables.items() if k != "params"}
  metadata = {**source.metadata, "config": source.config}
  if source.encoder_path == "":  # an image encoder's own variables: give them a place
    params = {"encoder": params}
    model_state = {k: {"encoder": v} for k, v in model_state.items()}
    metadata["encoder_path"] = "encoder"
    if source.config.get("objective") == "image_encoder" and not options.dataset:
      raise ConfigError(f"{options.init_from} holds an image encoder from outside ssl_jax: "
                        "name the labelled data to probe it on with --dataset images:DIR or "
                        "--dataset tfds:NAME.")
  return source.step or 0, {"params": params, "model_state": model_state}, metadata


def _data_source(config: dict, options: Options) -> str:
  if options.data_source:
    return options.data_source
  if config.get("data", {}).get("name") == "image_folder":
    raise ConfigError("This run was trained on an image folder: pass it with --data_source DIR "
                      "(data paths are never taken from a checkpoint).")
  return "stdlib"  # the built-in text corpus; image datasets other than folders ignore it


def _note_paths_not_followed(recorded: dict, config):
  """One line on stderr when the run trained on data elsewhere than this evaluation reads."""
  used = {"data.source": config.data.get("source"), "data.data_dir": config.data.get("data_dir")}
  differ = [f"{field}={str(value)[:120]!r}" for field, value in recorded.items()
            if value and value != used.get(field)]
  if differ:
    print(f"note: the checkpoint records {', '.join(differ)}; paths in a checkpoint are not "
          "followed: this evaluation reads --data_source / --data_dir (or their defaults).",
          file=sys.stderr, flush=True)


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
  """{"step", "split": protocol, metrics..., "total_seconds"} for the newest checkpoint;
  a metric over test items also gets NAME_ci95 (evaluate/uncertainty.py)."""
  return evaluate_items(workdir, protocol, options)[0]


def evaluate_items(workdir: str, protocol: str, options: Options = Options()):
  """(the JSON line of evaluate(), {metric: Estimate}: the per-item values behind it)."""
  from ssl_jax.evaluate import uncertainty
  if protocol not in PROTOCOLS:
    raise ConfigError(f"Unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}.")
  run_fn = _resolve(PROTOCOLS, protocol)  # import before loading: fail fast on a typo
  run = load_run(workdir, options)
  start = time.time()
  fields, estimates = uncertainty.line(run_fn(run, options), options.seed)
  return ({"step": run.step, "split": protocol, **fields,
           "total_seconds": time.time() - start}, estimates)


def options_error(options) -> str | None:
  """What is wrong with the numeric flags, before the checkpoint is read."""
  import math
  for field in ("batch_size", "finetune_steps", "probe_epochs", "probe_batch_size"):
    if getattr(options, field) <= 0:
      return f"--{field} must be positive; got {getattr(options, field)}."
  for field in ("max_train_examples", "max_test_examples"):
    if getattr(options, field) < 0:
      return f"--{field} must be 0 (all) or positive; got {getattr(options, field)}."
  for field in ("finetune_lr", "probe_lr"):
    if not (math.isfinite(getattr(options, field)) and getattr(options, field) > 0):
      return f"--{field} must be positive; got {getattr(options, field)}."
  if not options.feature_memory_mb >= 0:  # also refuses NaN
    return (f"--feature_memory_mb must be 0 (always on disk) or more; got "
            f"{options.feature_memory_mb}.")
  if options.show < 0:
    return f"--show must be 0 or a positive number of queries; got {options.show}."
  if options.prompt.count("{}") != 1:
    return f"--prompt must hold one {{}} where the class name goes; got {options.prompt!r}."
  if not -2 ** 63 <= options.seed < 2 ** 63:
    return f"--seed must be a 64-bit integer; got {options.seed}."
  return None
