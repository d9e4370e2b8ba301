"""The numbers of a seed study (ssl_jax.sweep): evaluations of every seed's final checkpoint,
summarised across seeds with intervals, plotted, and compared between two studies.

On disk, each seed's evaluation is DIR/seed_S/evaluations/LABEL.json: the protocol's JSON
line and the per-item values behind each metric (evaluate/uncertainty.py). A LABEL is the
protocol, with "@" and the dataset when it probes other data than the run's own
(`linear@packages:sklearn`). A table row is "LABEL/metric".
"""
import io
import json
import math
import os
import re

import numpy as np

from ssl_jax import storage
from ssl_jax.errors import ConfigError
from ssl_jax.evaluate import uncertainty
from ssl_jax.evaluate.uncertainty import Estimate

# A difference is called real when the bootstrap over test items and seeds puts its p-value
# below ALPHA. Welch's t over the per-seed values is reported beside it: with 2 or 3 seeds
# it has 1 to 4 degrees of freedom and rarely rejects anything, so it does not vote.
ALPHA = 0.05


def parse_protocols(text: str) -> list[tuple[str, str]]:
  """'linear,knn@tfds:digits' -> [("linear", ""), ("knn", "tfds:digits")]."""
  from ssl_jax.evaluate import PROTOCOLS
  out = []
  for part in (p.strip() for p in text.split(",") if p.strip()):
    protocol, _, dataset = part.partition("@")
    if protocol not in PROTOCOLS:
      raise ConfigError(f"--protocols names {protocol!r}; known protocols: "
                        f"{', '.join(PROTOCOLS)}.")
    out.append((protocol, dataset))
  if len({label(*p) for p in out}) != len(out):
    raise ConfigError(f"--protocols names an evaluation twice: {text!r}.")
  return out


def label(protocol: str, dataset: str) -> str:
  """The protocol, and where it probes other data, the dataset's kind and last path part."""
  if not dataset:
    return protocol
  kind, _, where = dataset.partition(":")
  return f"{protocol}@{kind}:{os.path.basename(where.rstrip('/'))}" if where else \
      f"{protocol}@{kind}"


def _file(seed_dir: str, name: str) -> str:
  return storage.join(seed_dir, "evaluations", re.sub(r"[^A-Za-z0-9_.@-]", "_", name) + ".json")


def save(seed_dir: str, name: str, fields: dict, estimates: dict, options: dict | None = None):
  storage.makedirs(storage.join(seed_dir, "evaluations"))
  storage.write_atomic(_file(seed_dir, name), json.dumps(
      {"line": fields, "options": options,
       "estimates": {k: e.to_json() for k, e in estimates.items()}}))


def load(seed_dir: str, name: str) -> dict | None:
  """{"line", "options", "estimates": {metric: Estimate}} of a saved evaluation, or None."""
  path = _file(seed_dir, name)
  if not storage.exists(path):
    return None
  saved = json.loads(storage.read_bytes(path))
  return {"line": saved["line"], "options": saved.get("options"),
          "estimates": {k: Estimate.from_json(v) for k, v in saved["estimates"].items()}}


def saved(seed_dir: str, step: int) -> dict:
  """label -> evaluation, for every evaluation saved in seed_dir at `step` (the final one):
  a study grows by rerunning the sweep with more --protocols."""
  folder = storage.join(seed_dir, "evaluations")
  out = {}
  for name in sorted(storage.listdir(folder)) if storage.isdir(folder) else []:
    if name.endswith(".json"):
      saved_json = json.loads(storage.read_bytes(storage.join(folder, name)))
      if saved_json["line"]["step"] == step:
        out[saved_json["line"]["split"]] = {
            "line": saved_json["line"],
            "estimates": {k: Estimate.from_json(v) for k, v in saved_json["estimates"].items()}}
  return out


def summarize(per_seed: dict[int, dict]) -> dict:
  """per_seed: seed -> {label: loaded evaluation}. Returns "LABEL/metric" -> {mean, std,
  values, ci95 (per seed), pooled_ci95}, for every metric with per-item values."""
  rows = {}
  names = sorted({(lab, m) for ev in per_seed.values() for lab, e in ev.items()
                  for m in e["estimates"]})
  for lab, metric in names:
    estimates = [ev[lab]["estimates"][metric] for ev in per_seed.values()
                 if lab in ev and metric in ev[lab]["estimates"]]
    values = np.array([float(e) for e in estimates])
    rows[f"{lab}/{metric}"] = {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "values": values.tolist(),
        "ci95": [ev[lab]["line"][f"{metric}_ci95"] for ev in per_seed.values()
                 if lab in ev and metric in ev[lab]["estimates"]],
        "pooled_ci95": uncertainty.pooled(estimates)}
  return rows


def markdown(rows: dict, seeds: list[int]) -> str:
  """mean ± std over seeds, the pooled 95% interval, then each seed's value [interval]."""
  head = ["metric", "mean ± std", "95% interval (seeds and test items)"] + \
      [f"seed {s}" for s in seeds]
  lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
  for name, r in rows.items():
    cells = [f"{v:.4f} [{lo:.4f}, {hi:.4f}]" for v, (lo, hi) in zip(r["values"], r["ci95"])]
    lo, hi = r["pooled_ci95"]
    lines.append(f"| {name} | {r['mean']:.4f} ± {r['std']:.4f} | [{lo:.4f}, {hi:.4f}] | "
                 + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def plot(rows: dict, seeds: list[int], path: str):
  """One panel per evaluation: each metric's value per seed with its 95% interval."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  labels = sorted({name.split("/")[0] for name in rows})
  fig, axes = plt.subplots(len(labels), 1, figsize=(8, 3 * len(labels)), squeeze=False)
  for ax, lab in zip(axes[:, 0], labels):
    metrics = [n for n in rows if n.split("/")[0] == lab]
    for i, name in enumerate(metrics):
      r = rows[name]
      x = np.arange(len(r["values"])) + (i - len(metrics) / 2) * 0.8 / max(len(metrics), 1)
      err = np.abs(np.array(r["ci95"]).T - np.array(r["values"]))
      ax.errorbar(x, r["values"], yerr=err, fmt="o", capsize=3, label=name.split("/", 1)[1])
    ax.set_title(lab)
    ax.set_xticks(range(len(seeds)), [f"seed {s}" for s in seeds])
    ax.legend(fontsize=6, ncol=2)
  fig.tight_layout()
  png = io.BytesIO()
  fig.savefig(png, format="png", dpi=110)
  plt.close(fig)
  storage.write_atomic(path, png.getvalue())


def load_study(workdir: str) -> tuple[list[int], dict]:
  """(seeds, seed -> {label: evaluation}) of a finished sweep with --protocols."""
  path = storage.join(workdir, "sweep.json")
  if not storage.exists(path):
    raise ConfigError(f"{workdir} holds no sweep.json: run ssl_jax.sweep with --protocols "
                      "there first.")
  summary = json.loads(storage.read_bytes(path))
  labels = summary.get("evaluation_labels", [])
  if not labels:
    raise ConfigError(f"The sweep in {workdir} evaluated nothing: rerun it with --protocols.")
  per_seed = {}
  for seed in summary["seeds"]:
    seed_dir = storage.join(workdir, f"seed_{seed}")
    per_seed[seed] = {lab: ev for lab in labels if (ev := load(seed_dir, lab)) is not None}
  return summary["seeds"], per_seed


def estimates_of(per_seed: dict, metric: str) -> list[Estimate]:
  lab, _, name = metric.partition("/")
  return [ev[lab]["estimates"][name] for ev in per_seed.values()
          if lab in ev and name in ev[lab]["estimates"]]


def compare(a: list[Estimate], b: list[Estimate], seed: int = 0) -> dict:
  """The bootstrap over test items and seeds, Welch's t over seeds, and the verdict."""
  result = uncertainty.difference(a, b, seed)
  result["p_seeds"] = uncertainty.seeds_t_test([float(e) for e in a], [float(e) for e in b])
  result["real"] = bool(result["p"] < ALPHA)
  return result


def sentence(metric: str, name_a: str, name_b: str, a: list[Estimate], b: list[Estimate],
             result: dict) -> str:
  mean = lambda e: np.mean([float(x) for x in e])
  std = lambda e: np.std([float(x) for x in e], ddof=1) if len(e) > 1 else 0.0
  lo, hi = result["ci95"]
  seeds_p = "n/a" if math.isnan(result["p_seeds"]) else f"{result['p_seeds']:.3g}"
  verdict = (f"{name_a if result['difference'] > 0 else name_b} is higher beyond the noise"
             if result["real"] else "no difference beyond the noise")
  return (f"{metric}: {name_a} {mean(a):.4f} ± {std(a):.4f} ({len(a)} seeds) vs {name_b} "
          f"{mean(b):.4f} ± {std(b):.4f} ({len(b)} seeds): difference {result['difference']:+.4f}"
          f", 95% interval [{lo:+.4f}, {hi:+.4f}], bootstrap p = {result['p']:.3g}, Welch t "
          f"over seeds p = {seeds_p}: {verdict}.")


def compare_studies(dir_a: str, dir_b: str, metrics: list[str]) -> list[dict]:
  """Every metric both studies report (or those named), compared; prints one sentence each."""
  _, seeds_a = load_study(dir_a)
  _, seeds_b = load_study(dir_b)
  shared = sorted(set(summarize_names(seeds_a)) & set(summarize_names(seeds_b)))
  chosen = metrics or shared
  missing = [m for m in chosen if m not in shared]
  if missing:
    raise ConfigError(f"--metric {', '.join(missing)} is not reported by both studies; both "
                      f"report: {', '.join(shared) or 'nothing'}.")
  out = []
  for metric in chosen:
    a, b = estimates_of(seeds_a, metric), estimates_of(seeds_b, metric)
    try:
      result = compare(a, b)
    except ValueError as e:
      raise ConfigError(f"{metric}: {e}.")
    print(sentence(metric, "A", "B", a, b, result), flush=True)
    out.append({"metric": metric, **result})
  return out


def summarize_names(per_seed: dict) -> list[str]:
  return sorted({f"{lab}/{m}" for ev in per_seed.values() for lab, e in ev.items()
                 for m in e["estimates"]})
