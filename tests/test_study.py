"""The seed study (ssl_jax.sweep --protocols) and its comparison (--compare): every number
of the table recomputed here from the saved per-item values, by a separate bootstrap."""
import json
import os
import shutil
import time

import numpy as np
import pytest

from conftest import run_cli, tiny_lm_flags
from ssl_jax.errors import ConfigError


@pytest.fixture(scope="module")
def labels(package_tree):
  """(label, file name) of the two evaluations, as the study names them."""
  tree = os.path.basename(package_tree)
  return {p: (f"{p}@packages:{tree}", f"{p}@packages_{tree}") for p in ("linear", "knn")}


@pytest.fixture(scope="module")
def study_dir(corpus_dir, data_dir, package_tree, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("study") / "gpt")
  flags = tiny_lm_flags(corpus_dir, data_dir, "--config.total_steps=6", "--config.eval_every=6")
  # Two calls: the second finds both runs trained and adds an evaluation to the study.
  for evals in (f"linear@packages:{package_tree}", f"knn@packages:{package_tree}"):
    out = run_cli("ssl_jax.sweep", *flags, "--workdir", workdir, "--seeds", "0,1",
                  "--protocols", evals, "--eval_options", "batch_size=64")
    assert out.returncode == 0, out.stderr[-3000:]
  assert "Already trained" in out.stderr + out.stdout
  return workdir


def _items(workdir, seed, label):
  return json.load(open(os.path.join(workdir, f"seed_{seed}", "evaluations", label + ".json")))


def _naive_interval(values_SxN, seed_resample: bool, draws=4000, seed=123):
  """Percentile bootstrap by explicit index draws: items (shared by the seeds) and seeds."""
  rng = np.random.default_rng(seed)
  S, N = values_SxN.shape
  out = []
  for _ in range(draws):
    items = rng.integers(0, N, N)
    seeds = rng.integers(0, S, S) if seed_resample else np.arange(S)
    out.append(values_SxN[seeds][:, items].mean())
  return np.quantile(out, [0.025, 0.975])


def test_study_table_recomputed(study_dir, labels):
  summary = json.load(open(os.path.join(study_dir, "sweep.json")))
  assert summary["seeds"] == [0, 1] and summary["date"] == time.strftime("%Y-%m-%d", time.gmtime())
  linear, linear_file = labels["linear"]
  assert summary["evaluation_labels"] == [labels["knn"][0], linear]
  rows = summary["evaluations"]
  for metric in ("top1", "random_init_top1", "bag_of_tokens_top1"):
    row = rows[f"{linear}/{metric}"]
    saved = [_items(study_dir, s, linear_file) for s in (0, 1)]
    # What a rerun compares before reusing it: each seed's own evaluation options.
    assert [(s["options"]["seed"], s["options"]["batch_size"]) for s in saved] == [(0, 64),
                                                                                  (1, 64)]
    values_SxN = np.array([s["estimates"][metric]["values"] for s in saved])
    means = values_SxN.mean(1)
    # Quantiles of a bootstrap over N items move in steps of about 1/N: allow one and a half.
    tol = 1.5 / values_SxN.shape[1]
    assert row["values"] == pytest.approx(means.tolist(), abs=1e-12)
    assert row["mean"] == pytest.approx(means.mean())
    assert row["std"] == pytest.approx(np.std(means, ddof=1))
    for s, line in enumerate(s["line"] for s in saved):
      assert line[metric] == pytest.approx(means[s])
      assert line[f"{metric}_ci95"] == row["ci95"][s]
      assert row["ci95"][s] == pytest.approx(_naive_interval(values_SxN[s:s + 1], False),
                                             abs=tol)
    assert row["pooled_ci95"] == pytest.approx(_naive_interval(values_SxN, True), abs=tol)
  table = open(os.path.join(study_dir, "sweep.md")).read()
  m = rows[f"{labels['knn'][0]}/top1_k20"]
  assert (f"| {labels['knn'][0]}/top1_k20 | {m['mean']:.4f} ± {m['std']:.4f} | "
          f"[{m['pooled_ci95'][0]:.4f}, {m['pooled_ci95'][1]:.4f}] |") in table
  assert os.path.getsize(os.path.join(study_dir, "evaluations.png")) > 5000


def test_compare_flags_a_planted_difference_only(study_dir, labels, tmp_path):
  same, better = str(tmp_path / "same"), str(tmp_path / "better")
  shutil.copytree(study_dir, same)
  shutil.copytree(study_dir, better)
  for seed in (0, 1):  # plant: B gets every snippet right
    path = os.path.join(better, f"seed_{seed}", "evaluations", labels["linear"][1] + ".json")
    saved = json.load(open(path))
    top1 = saved["estimates"]["top1"]
    top1["values"] = [1.0] * len(top1["values"])
    top1["value"] = 1.0
    json.dump(saved, open(path, "w"))
  metric = f"{labels['linear'][0]}/top1"
  out = run_cli("ssl_jax.sweep", "--compare", study_dir, same, "--metric", metric)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])["comparisons"][0]
  assert result["metric"] == metric and result["difference"] == 0.0
  assert result["p"] == 1.0 and not result["real"]
  assert "no difference beyond the noise" in out.stdout

  out = run_cli("ssl_jax.sweep", "--compare", better, study_dir, "--metric", metric)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])["comparisons"][0]
  assert result["real"] and result["difference"] > 0 and result["ci95"][0] > 0
  assert "A is higher beyond the noise" in out.stdout

  every = run_cli("ssl_jax.sweep", "--compare", study_dir, same)
  assert every.returncode == 0
  assert len(json.loads(every.stdout.strip().splitlines()[-1])["comparisons"]) >= 6

  bad = run_cli("ssl_jax.sweep", "--compare", study_dir, same, "--metric", "linear/nothing")
  assert bad.returncode == 2 and "not reported by both" in bad.stderr
  lonely = run_cli("ssl_jax.sweep", "--compare", study_dir)
  assert lonely.returncode == 2 and "two sweep workdirs" in lonely.stderr


def _fake_study(root, name, seeds, columns: dict, label="linear"):
  """A study folder as ssl_jax.sweep leaves it, with per-item values given per metric."""
  from ssl_jax import study
  from ssl_jax.evaluate import uncertainty
  for s in seeds:
    seed_dir = os.path.join(root, name, f"seed_{s}")
    os.makedirs(seed_dir)
    json.dump({"cpu": {"cores": 2, "kind": "Some CPU, AVX2"}, "host": "box",
               "command": ["/home/me/ssl_jax/sweep.py"]}, open(f"{seed_dir}/run.json", "w"))
    fields, estimates = uncertainty.line(
        {m: uncertainty.Estimate(make(s)) for m, make in columns.items()}, seed=s)
    study.save(seed_dir, label, {"step": 10, "split": label, **fields}, estimates)
  json.dump({"seeds": list(seeds), "date": "2026-01-02", "evaluation_labels": [label]},
            open(os.path.join(root, name, "sweep.json"), "w"))


def test_study_table_bolds_only_real_differences(tmp_path):
  from benchmarks import study_table
  rng = np.random.default_rng(0)
  truth = rng.random(360)
  pixels = truth < 0.80
  _fake_study(str(tmp_path), "simclr", (0, 1, 2), {  # clearly above both baselines
      "top1": lambda s: truth < 0.93 + 0.01 * s, "raw_pixels_top1": lambda s: pixels,
      "random_init_top1": lambda s: truth < 0.70})
  _fake_study(str(tmp_path), "byol", (0, 1, 2), {  # the raw-pixel baseline, to the item
      "top1": lambda s: pixels})
  text = study_table.render(str(tmp_path), "transfer")
  assert "2-core Some CPU, AVX2, 2026-01-02; 3 seeds per row" in text
  # What the table reads, copied elsewhere, prints the same table.
  _fake_study(str(tmp_path), "other", (0,), {"top1": lambda s: pixels})
  study_table.keep(str(tmp_path), str(tmp_path / "kept"), "transfer")
  assert study_table.render(str(tmp_path / "kept"), "transfer") == text
  assert sorted(os.listdir(tmp_path / "kept")) == ["byol", "simclr"]  # only the table's
  kept = json.load(open(tmp_path / "kept" / "simclr" / "seed_0" / "run.json"))
  assert kept == {"cpu": {"cores": 2, "kind": "Some CPU, AVX2"}}  # no machine paths
  rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()
          if line.startswith("| ")}
  simclr = rows["SimCLR (`simclr_digits`)"].split(" | ")[1]
  values = [np.mean(truth < 0.93 + 0.01 * s) for s in range(3)]
  assert simclr.startswith(f"**{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} [")
  byol = rows["BYOL (`byol_digits`)"].split(" | ")[1]
  assert byol.startswith(f"{np.mean(pixels):.3f} ± 0.000 [") and "**" not in byol
  assert "text: 8 stdlib packages" not in text  # no text study: no text table
  # --write puts the table between a file's markers, and leaves the rest of the file alone.
  doc = tmp_path / "doc.md"
  marker = f"<!-- transfer tables: benchmarks/study_table.py transfer {tmp_path / 'kept'} -->"
  doc.write_text(f"# Results\n{marker}\nold table\n<!-- end of transfer tables -->\nafter\n")
  assert study_table.write(str(doc)) == 1
  assert doc.read_text() == (f"# Results\n{marker}\n{text.rstrip()}\n"
                             "<!-- end of transfer tables -->\nafter\n")
  doc.write_text(marker.replace("kept", "missing") + "\n<!-- end of transfer tables -->\n")
  with pytest.raises(ConfigError, match="not in"):
    study_table.write(str(doc))
  # A study without a recorded date says so; a file's time (the clone's) is never named.
  summary = tmp_path / "kept" / "byol" / "sweep.json"
  summary.write_text(json.dumps({k: v for k, v in json.loads(summary.read_text()).items()
                                 if k != "date"}))
  os.utime(summary, (0, 0))
  undated = study_table.render(str(tmp_path / "kept"), "transfer")
  assert "2026-01-02 (some dates not recorded); 3 seeds" in undated and "1970" not in undated
  summary = tmp_path / "kept" / "simclr" / "sweep.json"
  summary.write_text(json.dumps({k: v for k, v in json.loads(summary.read_text()).items()
                                 if k != "date"}))
  assert "AVX2, date not recorded; 3 seeds" in study_table.render(str(tmp_path / "kept"), "transfer")


def test_docs_tables_are_the_kept_studies():
  """Every marked table in the README and docs/ prints again, unchanged, from the studies
  kept in docs/studies (python benchmarks/study_table.py --write README.md docs/*.md)."""
  from benchmarks import study_table
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  files = [os.path.join(root, "README.md")] + sorted(
      os.path.join(root, "docs", f) for f in os.listdir(os.path.join(root, "docs"))
      if f.endswith(".md"))
  rendered, found = {}, 0
  for path in files:
    for name, folder, body in study_table.marked(open(path).read()):
      assert body == study_table.marked_body(name, folder, rendered), (path, name)
      found += 1
  assert found >= 2  # the transfer tables, in the README and docs/transfer.md


def test_seed_placeholder_in_overrides():
  import ml_collections
  from ssl_jax.sweep import for_seed
  config = ml_collections.ConfigDict({"towers": {"text_init_from": ""}, "seed": 0})
  overrides = {"towers.text_init_from": "runs/bert/seed_{seed}", "seed": 0}
  assert for_seed(config, overrides, 2) == {"towers.text_init_from": "runs/bert/seed_2"}
  assert config.towers.text_init_from == "runs/bert/seed_2"
  assert for_seed(config, {"optim.lr": 0.1}, 2) == {}


def test_methods_table_takes_a_baseline_from_another_study_per_column(tmp_path):
  """Raw pixels: linear from the first ResNet study, fine-tune from MAE's."""
  from benchmarks import study_table
  ones = lambda s: np.ones(360)
  _fake_study(str(tmp_path), "simclr_resnet18", (0, 1, 2), {
      "top1": lambda s: np.arange(360) < 300 + s, "raw_pixels_top1": lambda s: np.arange(360) < 200})
  _fake_study(str(tmp_path), "mae_vit_tiny", (0, 1, 2), {
      "top1": ones, "raw_pixels_top1": lambda s: np.arange(360) < 100}, label="finetune")
  rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:]
          for line in study_table.render(str(tmp_path), "methods").splitlines()
          if line.startswith("| ")}
  # Only the columns measured: linear (from the ResNet study) and fine-tune (from MAE's).
  assert rows["encoder, features (360 test digits)"] == ["linear", "fine-tune |"]
  pixels = rows["raw pixels"]
  assert pixels[0].startswith(f"{200 / 360:.3f} ± 0.000") and pixels[1].startswith(f"{100 / 360:.3f}")
  assert rows["ResNet-18, SimCLR"][0].startswith("**")  # 0.83 against 0.56: real
  assert rows["ViT-tiny, MAE"][1].startswith("**1.000 ± 0.000")
  assert "ViT-tiny, BYOL" not in rows  # not measured: no row
  # A column nothing was measured in is left out: without MAE's study, no fine-tune column.
  shutil.rmtree(tmp_path / "mae_vit_tiny")
  text = study_table.render(str(tmp_path), "methods")
  assert "fine-tune" not in text and "| ResNet-18, SimCLR | **" in text
