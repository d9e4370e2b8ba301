"""The downstream text task and text-encoder transfer through `python -m ssl_jax.evaluate`."""
import collections
import json
import os

import numpy as np
import pytest

from conftest import TINY_CLI_FLAGS, metric_rows, run_cli
from ssl_jax.data import stdlib_packages


@pytest.fixture(scope="module")
def task_splits(data_dir):
  return stdlib_packages.load(data_dir)


def _examples(source):
  text = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731
  return [(text(e["path"]), text(e["text"]), int(e["label"]))
          for e in (source[i] for i in range(len(source)))]


def test_builder_is_deterministic_split_by_file_balanced_and_large(task_splits, tmp_path):
  train_src, test_src, names = task_splits
  train, test = _examples(train_src), _examples(test_src)
  again_train, again_test, again_names = stdlib_packages.load(str(tmp_path))  # a fresh build
  assert names == again_names and len(names) == stdlib_packages.NUM_CLASSES
  assert train == _examples(again_train) and test == _examples(again_test)
  assert {p for p, _, _ in train}.isdisjoint(p for p, _, _ in test)
  # Large enough to tell encoders apart: one accuracy near 0.5 has a standard error of
  # at most 0.013 (447 test snippets gave 0.024).
  assert len(test) >= 1500 and len(train) >= 2 * len(test)
  for rows in (train, test):
    counts = np.bincount([label for _, _, label in rows], minlength=len(names))
    assert counts.min() >= 0.9 * counts.max()
  assert all(0 < len(t) <= stdlib_packages.SNIPPET_CHARS for _, t, _ in test)
  assert all(path.split(os.sep)[0] == names[label] for path, _, label in train + test)
  # Every class samples all of its files on each side, even where it has more snippets
  # than its cap, not the first files in order.
  builder = stdlib_packages.StdlibPackages(data_dir=str(tmp_path))
  for label, cls in enumerate(names):
    by_file = builder._snippets_of(cls)
    sides = stdlib_packages.split_files({f: len(p) for f, p in by_file.items()})
    for split, rows in (("train", train), ("test", test)):
      assert {p for p, _, y in rows if y == label} == set(sides[split]), (cls, split)


def test_files_split_by_share_of_snippets_and_caps_spread_over_files():
  counts = {f"pkg/mod{i:02d}.py": 10 + 3 * i for i in range(20)}
  counts["pkg/big.py"] = 400  # more than the test share: stays in train
  sides = stdlib_packages.split_files(counts)
  assert sorted(sides["train"] + sides["test"]) == sorted(counts) and "pkg/big.py" in sides["train"]
  # Test files fill the share up to less than the smallest file left in train.
  target = stdlib_packages.TEST_SHARE * sum(counts.values())
  held = sum(counts[f] for f in sides["test"])
  assert target - min(counts[f] for f in sides["train"]) < held <= target
  # No file fits in the share: the smallest is still held out.
  assert stdlib_packages.split_files({"pkg/a.py": 50, "pkg/b.py": 40, "pkg/c.py": 0}) == {
      "test": ["pkg/b.py"], "train": ["pkg/a.py"]}
  pieces = [(f, i, f"{f}:{i}") for f in sides["train"] for i in range(counts[f])]
  kept = stdlib_packages.spread(pieces, 60)
  assert len(kept) == 60 and kept == sorted(kept)
  assert kept == stdlib_packages.spread(pieces[::-1], 60)  # whatever the input order
  per_file = collections.Counter(f for f, _, _ in kept)
  assert set(per_file) == set(sides["train"]) and max(per_file.values()) - min(
      per_file.values()) <= 1
  assert stdlib_packages.spread(pieces, 10 ** 6) == sorted(pieces)


@pytest.fixture(scope="module")
def pretrained(corpus_dir, data_dir, tmp_path_factory):
  """objective -> the workdir of a tiny model pretrained 4 steps (each trained once)."""
  workdirs = {}

  def get(objective):
    if objective not in workdirs:
      workdir = str(tmp_path_factory.mktemp(objective) / "run")
      config = ["--config", "configs/gpt_tiny.py" if objective == "next_token" else
                "configs/bert_tiny.py"]
      out = run_cli("ssl_jax.main", *config, "--workdir", workdir,
                    f"--config.data.source={corpus_dir}/*.py",
                    f"--config.data.data_dir={data_dir}", *TINY_CLI_FLAGS,
                    "--config.total_steps=4")
      assert out.returncode == 0, out.stderr[-3000:]
      workdirs[objective] = workdir
    return workdirs[objective]

  return get


@pytest.mark.parametrize("objective,protocol", [("next_token", "linear"),
                                                ("masked_lm", "finetune")])
def test_evaluate_cli_on_text_encoders(objective, protocol, pretrained, data_dir):
  workdir = pretrained(objective)
  res = run_cli("ssl_jax.evaluate", "--workdir", workdir, "--protocol", protocol,
                "--data_dir", data_dir,
                "--max_train_examples", "160", "--max_test_examples", "80",
                "--finetune_steps", "5", "--batch_size", "32")
  assert res.returncode == 0, res.stderr[-3000:]
  result = json.loads(res.stdout.strip().splitlines()[-1])
  assert result["split"] == protocol and result["step"] == 4
  for key in ("top1", "random_init_top1", "bag_of_tokens_top1"):
    assert 0.0 <= result[key] <= 1.0
  rows = metric_rows(workdir)
  assert protocol in {r["split"] for r in rows}


def test_evaluate_cli_on_another_package_tree(pretrained, package_tree, data_dir):
  """--dataset packages:DIR: the GPT probed (SGD linear probe) on which of 3 synthetic
  packages a snippet comes from, its baselines beside it; the task is prepared once in
  --data_dir under a name of its own."""
  workdir = pretrained("next_token")
  res = run_cli("ssl_jax.evaluate", "--workdir", workdir, "--protocol", "linear_sgd",
                "--data_dir", data_dir, "--dataset", f"packages:{package_tree}",
                "--probe_epochs", "30", "--batch_size", "64")
  assert res.returncode == 0, res.stderr[-3000:]
  result = json.loads(res.stdout.strip().splitlines()[-1])
  assert result["split"] == "linear_sgd" and result["step"] == 4
  assert "top5" not in result  # 3 classes
  for name in ("", "random_init_", "bag_of_tokens_"):
    assert 0.0 <= result[f"{name}top1"] <= 1.0 and result[f"{name}train_loss"] >= 0
  assert result["bag_of_tokens_top1"] > 0.6  # each package has its own words; chance 1/3
  assert metric_rows(workdir)[-1] == result
  assert len(os.listdir(os.path.join(data_dir, "python_packages"))) == 1
