"""Transfer evaluations: protocols on synthetic features, and the evaluate CLI end to end."""
import json
import math
import os

import numpy as np
import pytest

from ssl_jax import evaluate
from ssl_jax.errors import ConfigError
from ssl_jax.evaluate import fewshot, knn, linear

from conftest import run_cli, tiny_lm_config

K, D = 4, 16


def clusters(n_per_class, seed, spread=0.6, dim=D):
  """Gaussian clusters around orthogonal-ish class means: separable, and by angle too."""
  rng = np.random.default_rng(seed)
  means = np.random.default_rng(123).normal(size=(K, dim)) * 2.0
  labels = np.repeat(np.arange(K), n_per_class)
  return (means[labels] + spread * rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def test_knn_recovers_cluster_labels():
  train_x, train_y = clusters(50, 0)
  test_x, test_y = clusters(25, 1)
  preds = knn.knn_predict(train_x, train_y, test_x, K)
  assert set(preds) == set(knn.KS)
  for k, p in preds.items():
    assert p.shape == test_y.shape and np.mean(p == test_y) > 0.95, k
  # With labels unrelated to the features it is at chance: it really uses the neighbours.
  shuffled = np.random.default_rng(0).permutation(train_y)
  assert np.mean(knn.knn_predict(train_x, shuffled, test_x, K)[20] == test_y) < 0.5


def test_knn_weights_votes_by_similarity():
  train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 1.0], [0.2, 1.0]], np.float32)
  labels = np.array([0, 0, 1, 1, 1])
  query = np.array([[1.0, 0.05]], np.float32)
  # All 5 neighbours vote: 3 far ones for class 1, 2 close ones for class 0 - similarity wins.
  assert knn.knn_predict(train, labels, query, 2, ks=(5,))[5][0] == 0


def test_linear_probe_recovers_labels_kept_in_one_direction():
  """Labels live in the sign pattern of two features among noise: a linear probe finds
  them, a nearest-neighbour rule would struggle."""
  rng = np.random.default_rng(0)

  def make(n):
    x = rng.normal(size=(n, 40)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0).astype(int)
    x[:, 0] += np.sign(x[:, 0]) * 0.5  # a margin
    x[:, 1] += np.sign(x[:, 1]) * 0.5
    return x, y

  (train_x, train_y), (test_x, test_y) = make(400), make(200)
  result = linear.probe(train_x, train_y, test_x, test_y, K)
  assert result["top1"] > 0.95 and result["l2"] in linear.L2_GRID
  noise = linear.probe(rng.normal(size=(400, 40)), train_y, test_x, test_y, K)
  assert noise["top1"] < 0.5


def test_probe_fit_converges_to_the_optimum():
  train_x, train_y = clusters(30, 0)
  w, b, iterations = linear.fit(train_x, train_y, 1e-2, K)
  assert 0 < int(iterations) < 1000
  import jax
  import optax
  grad = jax.grad(lambda wb: optax.softmax_cross_entropy_with_integer_labels(
      train_x @ wb[0] + wb[1], train_y).mean() + 0.5e-2 * (wb[0] ** 2).sum())((w, b))
  assert max(float(np.abs(g).max()) for g in grad) < 1e-4


def test_fewshot_samples_n_per_class_and_recovers_labels():
  train_x, train_y = clusters(40, 0)
  test_x, test_y = clusters(25, 1)
  idx = fewshot.sample_shots(train_y, 5, K, np.random.default_rng(0))
  assert np.array_equal(np.bincount(train_y[idx]), [5] * K)
  result = fewshot.fewshot(train_x, train_y, test_x, test_y, K, shots=(1, 10))
  assert set(result) == {"top1_1shot", "top1_1shot_std", "top1_10shot", "top1_10shot_std"}
  assert result["top1_10shot"] > 0.95 and result["top1_1shot"] > 0.6
  predict = fewshot.ridge_classifier(train_x[idx], train_y[idx], K)
  assert np.mean(predict(train_x[idx]) == train_y[idx]) == 1.0


# --- the CLI, end to end ------------------------------------------------------------------

TINY_SIMCLR = ["--config.total_steps=4", "--config.batch_size=16", "--config.model.width=4",
               "--config.head.out_dim=8", "--config.log_every=2", "--config.eval_every=4",
               "--config.checkpoint_every=4", "--config.eval_steps=1",
               "--config.optim.warmup_steps=1"]


@pytest.fixture(scope="module")
def simclr_workdir(tmp_path_factory, data_dir):
  workdir = str(tmp_path_factory.mktemp("simclr") / "run")
  out = run_cli("ssl_jax.main", "--config", "configs/simclr_digits.py", "--workdir", workdir,
                f"--config.data.data_dir={data_dir}", *TINY_SIMCLR)
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir


def _rows(workdir):
  return [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]


def test_evaluate_cli_prints_and_appends_one_json_line(simclr_workdir):
  out = run_cli("ssl_jax.evaluate", "--workdir", simclr_workdir, "--protocol", "knn",
                "--max_train_examples=300")
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["step"] == 4 and result["split"] == "knn"
  for name in ("", "raw_pixels_", "random_init_"):
    for k in knn.KS:
      assert 0.0 <= result[f"{name}top1_k{k}"] <= 1.0
  assert result["raw_pixels_top1_k20"] > 0.5  # digits are easy from pixels
  assert _rows(simclr_workdir)[-1] == result
  assert {"train", "eval"} <= {r["split"] for r in _rows(simclr_workdir)}


@pytest.mark.parametrize("args,message", [
    (["--protocol", "nearest"], "Unknown protocol"),
    (["--protocol", "perplexity"], "language model"),
    (["--protocol", "knn", "--batch_size=0"], "batch_size"),
])
def test_evaluate_cli_bad_usage_exits_2(simclr_workdir, args, message):
  out = run_cli("ssl_jax.evaluate", "--workdir", simclr_workdir, *args)
  assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_evaluate_cli_without_checkpoint_exits_2(tmp_path):
  out = run_cli("ssl_jax.evaluate", "--workdir", str(tmp_path), "--protocol", "linear")
  assert out.returncode == 2 and "No checkpoints" in out.stderr


def test_feature_protocols_in_process(simclr_workdir):
  options = evaluate.Options(max_train_examples=200, max_test_examples=100, finetune_steps=3,
                             batch_size=32)
  result = evaluate.evaluate(simclr_workdir, "linear", options)
  assert {"top1", "raw_pixels_top1", "random_init_top1", "l2"} <= set(result)
  assert result["raw_pixels_top1"] > 0.6
  result = evaluate.evaluate(simclr_workdir, "fewshot", options)
  assert {f"{p}top1_{n}shot" for p in ("", "random_init_") for n in fewshot.SHOTS} <= set(result)
  result = evaluate.evaluate(simclr_workdir, "finetune", options)
  assert {"top1", "train_loss", "random_init_top1", "raw_pixels_top1"} <= set(result)
  assert all(0.0 <= result[k] <= 1.0 for k in ("top1", "random_init_top1"))


def test_perplexity_covers_the_validation_split(corpus_dir, data_dir, tmp_path):
  """A language-model workdir: the protocol's loss over every validation batch equals the
  training loop's final evaluation when that one also ran over all of them."""
  from ssl_jax import train
  workdir = str(tmp_path / "lm")
  config = tiny_lm_config(f"{corpus_dir}/*.py", data_dir, total_steps=4, eval_every=4,
                          checkpoint_every=4, eval_steps=10_000)
  assert train.train(config, workdir) == 0
  final_eval = [r for r in _rows(workdir) if r["split"] == "eval"][-1]
  result = evaluate.evaluate(workdir, "perplexity")
  assert result["split"] == "perplexity" and result["step"] == 4
  np.testing.assert_allclose(result["loss"], final_eval["loss"], rtol=1e-5)
  np.testing.assert_allclose(result["bits_per_byte"], final_eval["bits_per_byte"], rtol=1e-5)
  np.testing.assert_allclose(result["perplexity"], math.exp(result["loss"]), rtol=1e-6)
  assert result["tokens"] >= 8 * 32
  with pytest.raises(ConfigError, match="No transfer source"):
    evaluate.evaluate(workdir, "knn")
