"""Reproducibility studies: several seeds of one config, evaluated; two studies compared; or a
determinism check.

  python -m ssl_jax.sweep --config configs/NAME.py --workdir DIR --seeds 0,1,2
      [--protocols linear,knn,linear@packages:PATH] [--eval_options batch_size=32,...]
      [--config.F=V ...]   ("{seed}" in a string override becomes each run's seed)
      trains DIR/seed_S for each seed, then runs each protocol (PROTOCOL@DATASET probes
      other data) on each seed's final checkpoint, with the seed as the evaluation seed (so
      the random-init baseline varies too). Writes DIR/sweep.md and DIR/sweep.json: the
      final training metrics and every evaluation metric as mean ± std over seeds, each
      seed's value with its bootstrap interval, and the pooled 95% interval (seeds and test
      items resampled together); DIR/evaluations.png (one panel per protocol, each seed
      with its interval) and DIR/curves.png.
  python -m ssl_jax.sweep --compare DIR_A DIR_B [--metric LABEL/NAME ...]
      says for each metric both studies report whether A and B differ beyond the noise: a
      bootstrap over test items (paired) and seeds, whose p-value below 0.05 calls a
      difference real, with Welch's t-test over the seeds beside it (ssl_jax/study.py).
  python -m ssl_jax.sweep --config configs/NAME.py --workdir DIR --check_determinism
      trains the config twice (DIR/run_a, DIR/run_b) and reports whether every metric and
      every parameter is bit-identical, naming the first differing step and metric if not.

Exit codes as for ssl_jax.main (1: the determinism check found a difference). A preempted
sweep exits 75 after the current run's checkpoint; the same command resumes it, finished
runs and evaluations being found done.
"""
import io
import json
import sys
import time

import numpy as np
from absl import flags

from ssl_jax import bootstrap, storage, study
from ssl_jax import main as entry
from ssl_jax.errors import EXIT_CONFIG, EXIT_OK, ConfigError
from ssl_jax.metrics import read_metrics

_SEEDS = flags.DEFINE_string("seeds", "0,1,2", "Comma-separated seeds.")
_CHECK = flags.DEFINE_bool("check_determinism", False, "Train twice and compare bit for bit.")
_PROTOCOLS = flags.DEFINE_string(
    "protocols", "", "Evaluations of each seed's final checkpoint, comma-separated: PROTOCOL "
    "or PROTOCOL@DATASET (a --dataset of ssl_jax.evaluate), e.g. linear,knn,fewshot.")
_EVAL_OPTIONS = flags.DEFINE_string(
    "eval_options", "", "Options of every evaluation, as ssl_jax.evaluate's flags: "
    "NAME=VALUE,... e.g. batch_size=32,finetune_steps=300.")
_COMPARE = flags.DEFINE_bool(
    "compare", False, "Compare the two sweep workdirs given as arguments: --compare A B.")
_METRIC = flags.DEFINE_multi_string(
    "metric", [], "With --compare: the metric(s) to compare, as LABEL/NAME (e.g. "
    "linear/top1); default every metric both report.")

# Metrics that measure the machine, not the run: excluded from comparisons.
_TIMING = ("_per_s",)


def final_metrics(rows: list[dict]) -> dict:
  """The last value of each (split, metric), e.g. {"eval/loss": 1.2, "train/loss": 1.3}."""
  out = {}
  for row in rows:
    for key, value in row.items():
      if key not in ("step", "split") and not key.endswith(_TIMING):
        out[f"{row['split']}/{key}"] = value
  return out


def summarize(per_seed: dict[int, dict]) -> dict:
  names = sorted(set().union(*[m.keys() for m in per_seed.values()]))
  table = {}
  for name in names:
    values = np.array([m[name] for m in per_seed.values() if name in m], np.float64)
    table[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1
                   else 0.0, "values": values.tolist()}
  return table


def markdown(table: dict, seeds: list[int]) -> str:
  lines = [f"| metric | mean | std | {' | '.join(f'seed {s}' for s in seeds)} |",
           "| --- | --- | --- |" + " --- |" * len(seeds)]
  for name, t in table.items():
    values = " | ".join(f"{v:.4f}" for v in t["values"])
    lines.append(f"| {name} | {t['mean']:.4f} | {t['std']:.4f} | {values} |")
  return "\n".join(lines) + "\n"


def plot_curves(runs: dict[int, list[dict]], path: str):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7, 4))
  for seed, rows in runs.items():
    for split, style in (("train", "-"), ("eval", "o--")):
      pts = [(r["step"], r["loss"]) for r in rows if r["split"] == split and "loss" in r]
      if pts:
        ax.plot(*zip(*pts), style, label=f"seed {seed} {split}", alpha=0.8)
  ax.set_xlabel("step")
  ax.set_ylabel("loss")
  ax.legend(fontsize=7)
  fig.tight_layout()
  png = io.BytesIO()
  fig.savefig(png, format="png", dpi=120)
  plt.close(fig)
  storage.write_atomic(path, png.getvalue())


def first_difference(a: list[dict], b: list[dict]) -> str | None:
  """Where two metric logs first differ (timing metrics ignored), or None."""
  for row_a, row_b in zip(a, b):
    keys = sorted(set(row_a) | set(row_b))
    for key in keys:
      if key.endswith(_TIMING):
        continue
      if row_a.get(key) != row_b.get(key):
        return (f"step {row_a.get('step')} split {row_a.get('split')} metric {key}: "
                f"{row_a.get(key)!r} vs {row_b.get(key)!r}")
  if len(a) != len(b):
    return f"the logs have {len(a)} and {len(b)} rows"
  return None


def params_difference(dir_a: str, dir_b: str) -> str | None:
  import jax
  from ssl_jax.checkpoint import load_latest
  _, a, _ = load_latest(dir_a)
  _, b, _ = load_latest(dir_b)
  leaves_a = jax.tree_util.tree_leaves_with_path(a["params"])
  leaves_b = jax.tree.leaves(b["params"])
  for (path, x), y in zip(leaves_a, leaves_b):
    if not np.array_equal(np.asarray(x), np.asarray(y)):
      return f"parameter {jax.tree_util.keystr(path)} differs"
  return None


def parse_seeds(text: str) -> list[int]:
  """'0,1,2' -> [0, 1, 2]; ConfigError for anything else."""
  parts = [s.strip() for s in text.split(",") if s.strip()]
  try:
    seeds = [int(s) for s in parts]
  except ValueError:
    raise ConfigError(f"--seeds must be comma-separated integers, e.g. 0,1,2; got {text!r}.")
  if not seeds:
    raise ConfigError("--seeds names no seed.")
  if len(set(seeds)) != len(seeds):
    raise ConfigError(f"--seeds names a seed twice: {text!r}.")
  return seeds


def eval_options(text: str, config):
  """evaluate.Options from NAME=VALUE pairs; data paths default to the run's own."""
  import dataclasses
  from ssl_jax import evaluate
  data = config.get("data", {})
  values = {"data_source": str(data.get("source", "") or ""),
            "data_dir": str(data.get("data_dir", "") or "")}
  fields = {f.name: f.type for f in dataclasses.fields(evaluate.Options)}
  for pair in (p.strip() for p in text.split(",") if p.strip()):
    name, eq, value = pair.partition("=")
    if not eq or name not in fields or name in ("seed", "dataset", "init_from"):
      raise ConfigError(f"--eval_options: {pair!r} is not NAME=VALUE with NAME one of "
                        f"{', '.join(n for n in fields if n not in ('seed', 'dataset', 'init_from'))}"
                        " (the seed is the run's; datasets go in --protocols).")
    default = getattr(evaluate.Options(), name)
    try:
      values[name] = (value.lower() in ("1", "true") if isinstance(default, bool)
                      else type(default)(value))
    except ValueError:
      raise ConfigError(f"--eval_options: {name} takes a {type(default).__name__}; got {value!r}.")
  options = evaluate.Options(**values)
  problem = evaluate.options_error(options)
  if problem:
    raise ConfigError(f"--eval_options: {problem}")
  return options


def evaluate_seed(seed_dir: str, seed: int, protocols, options, config) -> dict:
  """label -> evaluation of the seed's final checkpoint; one saved at that step with the same
  options (or saved before options were recorded) is reused."""
  import dataclasses
  from ssl_jax import evaluate
  out = {}
  for protocol, dataset in protocols:
    name = study.label(protocol, dataset)
    these = dataclasses.replace(options, seed=seed, dataset=dataset)
    saved = study.load(seed_dir, name)
    if (saved is None or saved["line"]["step"] != config.total_steps
        or saved["options"] not in (None, dataclasses.asdict(these))):
      fields, estimates = evaluate.evaluate_items(seed_dir, protocol, these)
      fields["split"] = name
      if _is_main():
        study.save(seed_dir, name, fields, estimates, dataclasses.asdict(these))
      saved = {"line": fields, "estimates": estimates}
      print(json.dumps({"seed": seed, **fields}), flush=True)
    out[name] = saved
  return {**study.saved(seed_dir, config.total_steps), **out}


def for_seed(config, overrides: dict, seed: int) -> dict:
  """Sets each override holding "{seed}" to its value for this seed (e.g. a warm start from
  the same seed of another study: --config.init_from=runs/bert/seed_{seed}); returns them."""
  from ssl_jax import config_check
  per_seed = {k: v.replace("{seed}", str(seed)) for k, v in overrides.items()
              if isinstance(v, str) and "{seed}" in v}
  config_check.set_fields(config, per_seed)
  return per_seed


def run(config, workdir: str, overrides: dict) -> int:
  from ssl_jax import train
  seeds = None if _CHECK.value else parse_seeds(_SEEDS.value)  # before the workdir is made
  protocols = study.parse_protocols(_PROTOCOLS.value)
  options = eval_options(_EVAL_OPTIONS.value, config)
  storage.makedirs(workdir)
  if _CHECK.value:
    dirs = [storage.join(workdir, name) for name in ("run_a", "run_b")]
    for d in dirs:
      train.train(config, d, overrides)  # Preempted and Diverged stop the sweep
    diff = first_difference(read_metrics(dirs[0]), read_metrics(dirs[1]))
    diff = diff or params_difference(*dirs)
    verdict = {"bit_identical": diff is None, "first_difference": diff}
    print(json.dumps(verdict))
    _write(storage.join(workdir, "determinism.json"), json.dumps(verdict, indent=2))
    return EXIT_OK if diff is None else 1
  runs, evaluations = {}, {}
  for seed in seeds:
    config.seed = seed
    d = storage.join(workdir, f"seed_{seed}")
    train.train(config, d, {**overrides, **for_seed(config, overrides, seed), "seed": seed})
    runs[seed] = read_metrics(d)
    evaluations[seed] = evaluate_seed(d, seed, protocols, options, config)
  table = summarize({s: final_metrics(rows) for s, rows in runs.items()})
  rows = study.summarize(evaluations)
  text = markdown(table, seeds) + ("\n" + study.markdown(rows, seeds) if rows else "")
  _write(storage.join(workdir, "sweep.json"), json.dumps(
      {"seeds": seeds, "date": time.strftime("%Y-%m-%d", time.gmtime()), "final": table,
       "evaluation_labels": sorted({lab for ev in evaluations.values() for lab in ev}),
       "evaluations": rows},
      indent=2))
  _write(storage.join(workdir, "sweep.md"), text)
  if _is_main():
    plot_curves(runs, storage.join(workdir, "curves.png"))
    if rows:
      study.plot(rows, seeds, storage.join(workdir, "evaluations.png"))
  print(text)
  return EXIT_OK


def compare(argv) -> int:
  if len(argv) != 3:
    print(f"error: --compare takes two sweep workdirs: --compare A B.\n{USAGE}", file=sys.stderr)
    return EXIT_CONFIG
  try:
    results = study.compare_studies(argv[1], argv[2], _METRIC.value)
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return EXIT_CONFIG
  print(json.dumps({"a": argv[1], "b": argv[2], "comparisons": results}), flush=True)
  return EXIT_OK


def _is_main() -> bool:
  import jax
  return jax.process_index() == 0


def _write(path: str, text: str):
  """Summaries are written by process 0 only, whole (storage.py)."""
  if _is_main():
    storage.write_atomic(path, text)


USAGE = ("Usage: python -m ssl_jax.sweep --config configs/NAME.py --workdir DIR "
         "[--seeds 0,1,2 [--protocols linear,knn,...] [--eval_options NAME=VALUE,...] | "
         "--check_determinism] [--config.FIELD=VALUE ...]\n"
         "       python -m ssl_jax.sweep --compare DIR_A DIR_B [--metric LABEL/NAME ...]")


def main(argv):
  if _COMPARE.value:
    return compare(argv)
  return entry.run_command(argv, run)


if __name__ == "__main__":
  bootstrap.start("ssl_jax.sweep", main, USAGE)
