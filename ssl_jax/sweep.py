"""Reproducibility studies: several seeds of one config, or a determinism check.

  python -m ssl_jax.sweep --config configs/NAME.py --workdir DIR --seeds 0,1,2 [--config.F=V ...]
      trains DIR/seed_S for each seed, then writes DIR/sweep.md, DIR/sweep.json (final
      metrics: mean and std over seeds) and DIR/curves.png.
  python -m ssl_jax.sweep --config configs/NAME.py --workdir DIR --check_determinism
      trains the config twice (DIR/run_a, DIR/run_b) and reports whether every metric and
      every parameter is bit-identical, naming the first differing step and metric if not.

Exit codes as for ssl_jax.main (1: the determinism check found a difference). A preempted
sweep exits 75 after the current run's checkpoint; the same command resumes it, finished
runs being found done.
"""
import io
import json

import numpy as np
from absl import flags

from ssl_jax import bootstrap, storage
from ssl_jax import main as entry
from ssl_jax.errors import EXIT_OK, ConfigError
from ssl_jax.metrics import read_metrics

_SEEDS = flags.DEFINE_string("seeds", "0,1,2", "Comma-separated seeds.")
_CHECK = flags.DEFINE_bool("check_determinism", False, "Train twice and compare bit for bit.")

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


def run(config, workdir: str, overrides: dict) -> int:
  from ssl_jax import train
  seeds = None if _CHECK.value else parse_seeds(_SEEDS.value)  # before the workdir is made
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
  runs = {}
  for seed in seeds:
    config.seed = seed
    d = storage.join(workdir, f"seed_{seed}")
    train.train(config, d, {**overrides, "seed": seed})
    runs[seed] = read_metrics(d)
  table = summarize({s: final_metrics(rows) for s, rows in runs.items()})
  text = markdown(table, seeds)
  _write(storage.join(workdir, "sweep.json"), json.dumps({"seeds": seeds, "final": table},
                                                         indent=2))
  _write(storage.join(workdir, "sweep.md"), text)
  if _is_main():
    plot_curves(runs, storage.join(workdir, "curves.png"))
  print(text)
  return EXIT_OK


def _is_main() -> bool:
  import jax
  return jax.process_index() == 0


def _write(path: str, text: str):
  """Summaries are written by process 0 only, whole (storage.py)."""
  if _is_main():
    storage.write_atomic(path, text)


USAGE = ("Usage: python -m ssl_jax.sweep --config configs/NAME.py --workdir DIR "
         "[--seeds 0,1,2 | --check_determinism] [--config.FIELD=VALUE ...]")


def main(argv):
  return entry.run_command(argv, run)


if __name__ == "__main__":
  bootstrap.start("ssl_jax.sweep", main, USAGE)
