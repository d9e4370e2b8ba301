"""python -m ssl_jax.evaluate (--workdir DIR | --init_from PATH [--workdir DIR])
    --protocol linear|linear_sgd|knn|fewshot|finetune|perplexity|retrieval|zeroshot
    [--dataset stdlib|packages:DIR|images:DIR|tfds:NAME] [--data_dir DIR]
    [--data_source GLOB_OR_DIR]

--dataset probes the encoder on other labelled data than its run's (evaluate/datasets.py).
--init_from evaluates other weights: a workdir (DIR:STEP for one step) or a Hugging Face folder.
Data paths come from these flags (or their defaults), never from the checkpoint.
Prints one JSON line ({"step", "split": protocol, metrics...}) and appends it to
DIR/metrics.jsonl. Exit codes: 0 done, 2 bad usage or checkpoint (or a --batch_size too large
for device memory), 3 data problem, 74 the workdir's disk is full or read-only.
"""
import json
import sys

from absl import flags

from ssl_jax import bootstrap, config_check, evaluate, storage
from ssl_jax.errors import EXIT_CONFIG, ConfigError
from ssl_jax.evaluate import datasets

_DEFAULTS = evaluate.Options()
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Training workdir holding checkpoints/; with --init_from, where the "
    "results are appended (optional: without it they are only printed).")
_INIT_FROM = flags.DEFINE_string(
    "init_from", "", "Evaluate these weights instead: an ssl_jax workdir (DIR or DIR:STEP) "
    "or a Hugging Face folder (an export, or a transformers checkpoint of a mapped "
    "architecture).")
_PROTOCOL = flags.DEFINE_string("protocol", None, f"One of {', '.join(evaluate.PROTOCOLS)}.")
_BASELINES = flags.DEFINE_bool("baselines", _DEFAULTS.baselines,
                               "Also evaluate raw inputs and a randomly initialised encoder.")
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed for splits, draws and baselines.")
_BATCH = flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size,
                              "Batch size for features and fine-tuning.")
_MAX_TRAIN = flags.DEFINE_integer("max_train_examples", _DEFAULTS.max_train_examples,
                                  "Use at most this many labelled training examples; 0 = all.")
_MAX_TEST = flags.DEFINE_integer("max_test_examples", _DEFAULTS.max_test_examples,
                                 "Use at most this many test examples; 0 = all.")
_FT_STEPS = flags.DEFINE_integer("finetune_steps", _DEFAULTS.finetune_steps,
                                 "Optimizer steps of the finetune protocol.")
_FT_LR = flags.DEFINE_float("finetune_lr", _DEFAULTS.finetune_lr, "Peak AdamW learning rate.")
_DATA_SOURCE = flags.DEFINE_string(
    "data_source", _DEFAULTS.data_source, "The run's data.source when it needs one: a text "
    "corpus glob (default: the built-in stdlib corpus) or an image folder. Never read from "
    "the checkpoint.")
_DATASET = flags.DEFINE_string(
    "dataset", _DEFAULTS.dataset, "The labelled data to probe the encoder on (default: the "
    "run's own). Text encoders: stdlib, or packages:DIR (the Python packages under DIR are "
    "the classes). Image encoders: images:DIR (one subfolder per class), or tfds:NAME (a "
    "TFDS dataset with image and label in --data_dir, e.g. digits or cifar10).")
_FEATURE_MB = flags.DEFINE_float(
    "feature_memory_mb", _DEFAULTS.feature_memory_mb, "A split's features larger than this "
    "are written to a file in $TMPDIR instead of memory (removed afterwards).")
_PROBE_EPOCHS = flags.DEFINE_integer("probe_epochs", _DEFAULTS.probe_epochs,
                                     "Epochs of the linear_sgd probe.")
_PROBE_LR = flags.DEFINE_float("probe_lr", _DEFAULTS.probe_lr,
                               "Peak SGD learning rate of the linear_sgd probe (cosine decay).")
_PROBE_BATCH = flags.DEFINE_integer("probe_batch_size", _DEFAULTS.probe_batch_size,
                                    "Batch size of the linear_sgd probe.")
_SHOW = flags.DEFINE_integer("show", _DEFAULTS.show, "retrieval: print this many queries "
                             "(each direction) with their top matches before the results.")
_PROMPT = flags.DEFINE_string("prompt", _DEFAULTS.prompt, "zeroshot: the text each class name "
                              "is put into, at its {}.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", _DEFAULTS.data_dir, "TFDS data directory (default: $TFDS_DATA_DIR or "
    "~/tensorflow_datasets). Never read from the checkpoint.")

USAGE = ("Usage: python -m ssl_jax.evaluate (--workdir DIR | --init_from PATH) --protocol "
         f"{'|'.join(evaluate.PROTOCOLS)} [--dataset stdlib|packages:DIR|images:DIR|tfds:NAME] "
         "[--data_dir DIR] [--data_source GLOB_OR_DIR] [--baselines=false] [--seed S] "
         "[--probe_epochs E --probe_lr LR --probe_batch_size B] [--feature_memory_mb MB] "
         "[--show N] [--prompt 'a photo of a {}.']")


def main(argv):
  if len(argv) > 1:
    print(f"error: unexpected arguments {argv[1:]}\n{USAGE}", file=sys.stderr)
    return EXIT_CONFIG
  if not (_WORKDIR.value or _INIT_FROM.value) or not _PROTOCOL.value:
    print(f"error: --protocol and --workdir (or --init_from) are required.\n{USAGE}",
          file=sys.stderr)
    return EXIT_CONFIG
  options = evaluate.Options(
      seed=_SEED.value, baselines=_BASELINES.value, batch_size=_BATCH.value,
      max_train_examples=_MAX_TRAIN.value, max_test_examples=_MAX_TEST.value,
      finetune_steps=_FT_STEPS.value, finetune_lr=_FT_LR.value,
      data_source=_DATA_SOURCE.value, data_dir=_DATA_DIR.value, dataset=_DATASET.value,
      feature_memory_mb=_FEATURE_MB.value, probe_epochs=_PROBE_EPOCHS.value,
      probe_lr=_PROBE_LR.value, probe_batch_size=_PROBE_BATCH.value,
      init_from=_INIT_FROM.value, show=_SHOW.value, prompt=_PROMPT.value)
  problem = evaluate.options_error(options)
  workdir = None
  try:
    if _WORKDIR.value:
      workdir = storage.resolve("--workdir", _WORKDIR.value)  # a local path or a gs:// URL
    if _DATA_DIR.value:
      storage.resolve("--data_dir", _DATA_DIR.value)
    config_check.check_local_path("--data_source", _DATA_SOURCE.value or "")
    datasets.parse(options.dataset)
  except ConfigError as e:
    problem = problem or str(e)
  if problem:
    print(f"error: {problem}\n{USAGE}", file=sys.stderr)
    return EXIT_CONFIG
  try:
    bootstrap.join_distributed()  # several processes: each extracts its devices' rows
    result = evaluate.evaluate(workdir, _PROTOCOL.value, options)
    import jax
    if jax.process_index() == 0 and workdir:
      from ssl_jax.metrics import MetricWriter
      writer = MetricWriter(workdir)
      writer.write(result["step"], result["split"],
                   {k: v for k, v in result.items() if k not in ("step", "split")})
      writer.close()
  except Exception as e:
    return bootstrap.exit_code(
        e, workdir=workdir, storage_context=f"could not append the results to "
        f"{workdir}/metrics.jsonl: ", batch=f"--batch_size={options.batch_size}",
        fit_advice="lower --batch_size")
  import jax
  if jax.process_index() == 0:
    print(json.dumps(result), flush=True)
  return 0


if __name__ == "__main__":
  bootstrap.start("ssl_jax.evaluate", main, USAGE)
