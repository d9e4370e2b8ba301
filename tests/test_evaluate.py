"""Transfer evaluations: protocols on synthetic features, and the evaluate CLI end to end."""
import dataclasses
import json
import math
import os

import numpy as np
import pytest

from ssl_jax import evaluate
from ssl_jax.errors import ConfigError
from ssl_jax.evaluate import fewshot, knn, linear

from conftest import metric_rows, run_cli, tiny_lm_config

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


def test_linear_probe_recovers_labels_and_converges():
  """Labels live in the signs of two features among noise: a linear probe finds them."""
  import jax
  import optax
  rng = np.random.default_rng(0)

  def make(n):
    x = rng.normal(size=(n, 40)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0).astype(int)
    x[:, :2] += np.sign(x[:, :2]) * 0.5  # a margin
    return x, y

  (train_x, train_y), (test_x, test_y) = make(400), make(200)
  result = linear.probe(train_x, train_y, test_x, test_y, K)
  assert result["top1"] > 0.95 and result["l2"] in linear.L2_GRID
  noise = linear.probe(rng.normal(size=(400, 40)).astype(np.float32), train_y, test_x, test_y, K)
  assert noise["top1"] < 0.5
  # The solver stops at the optimum: the regularised objective's gradient vanishes there.
  w, b, iterations = linear.fit(train_x, train_y, 1e-2, K, np.ones(400, np.float32))
  assert 0 < int(iterations) < 1000
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


def test_finetune_trains_encoder_and_head():
  """A small encoder with batch norm, fine-tuned on clusters: it learns, and the encoder's
  parameters and batch statistics move with it."""
  import flax.linen as nn
  import jax
  from ssl_jax.evaluate import finetune
  from ssl_jax.evaluate.transfer import Encoder, Labelled

  class Small(nn.Module):
    @nn.compact
    def __call__(self, x, train):
      return nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Dense(8)(x)))

  module = Small()
  variables = module.init(jax.random.key(0), np.zeros((1, D), np.float32), False)

  def apply(params, state, x, train):
    if train:
      return module.apply({"params": params, **state}, x, True, mutable=["batch_stats"])
    return module.apply({"params": params, **state}, x, False), state

  encoder = Encoder(apply, variables["params"], {"batch_stats": variables["batch_stats"]})
  train, test = Labelled(*clusters(50, 0)), Labelled(*clusters(25, 1))
  result, tuned = finetune.finetune(encoder, train, test, K, steps=60, lr=3e-2, batch_size=64)
  assert result["top1"] > 0.9 and result["train_loss"] < 0.5
  moved = lambda a, b: not np.allclose(a, b)
  assert moved(tuned.params["Dense_0"]["kernel"], encoder.params["Dense_0"]["kernel"])
  assert moved(tuned.state["batch_stats"]["BatchNorm_0"]["mean"],
               encoder.state["batch_stats"]["BatchNorm_0"]["mean"])


def test_feature_protocols_score_every_encoder_under_its_own_name():
  """One runner for linear, knn and fewshot: the pretrained encoder's metrics keep their
  names, each baseline's carry its name, and every encoder is timed."""
  import jax.numpy as jnp
  from ssl_jax.evaluate.transfer import Encoder, Labelled, Transfer, score_features

  def scaled(params, state, x, train):
    return x * params["scale"], state

  transfer = Transfer(
      Encoder(scaled, {"scale": jnp.float32(2.0)}), Labelled(*clusters(3, 0)),
      Labelled(*clusters(2, 1)), K,
      random_init=lambda key: Encoder(scaled, {"scale": jnp.float32(0.0)}),
      raw=Encoder(scaled, {"scale": jnp.float32(1.0)}), raw_name="raw_inputs")

  def score(train_NxD, test_MxD, transfer, options):
    return {"rows": len(train_NxD) + len(test_MxD), "total": float(np.abs(test_MxD).sum())}

  test_total = float(np.abs(transfer.test.inputs).sum())
  out = score_features(transfer, evaluate.Options(), score)
  assert out.keys() == {f"{name}{metric}" for name in ("", "raw_inputs_", "random_init_")
                        for metric in ("rows", "total", "seconds")}
  assert out["rows"] == out["raw_inputs_rows"] == 3 * K + 2 * K
  np.testing.assert_allclose([out["total"], out["raw_inputs_total"], out["random_init_total"]],
                             [2 * test_total, test_total, 0.0], rtol=1e-5)
  assert all(out[f"{name}seconds"] >= 0 for name in ("", "raw_inputs_", "random_init_"))
  alone = score_features(transfer, evaluate.Options(baselines=False), score)
  assert alone.keys() == {"rows", "total", "seconds"}


# --- the CLI, end to end ------------------------------------------------------------------

# A one-block ViT compiles in a fraction of a ResNet's time; ResNets are tested elsewhere.
TINY_SIMCLR = ["--config.total_steps=4", "--config.batch_size=16", "--config.model.name=vit",
               "--config.model.depth=1", "--config.model.width=16", "--config.model.num_heads=2",
               "--config.model.patch_size=4", "--config.head.out_dim=8", "--config.log_every=2", "--config.eval_every=4",
               "--config.checkpoint_every=4", "--config.eval_steps=1",
               "--config.optim.warmup_steps=1"]


@pytest.fixture(scope="module")
def simclr_workdir(tmp_path_factory, data_dir):
  workdir = str(tmp_path_factory.mktemp("simclr") / "run")
  out = run_cli("ssl_jax.main", "--config", "configs/simclr_digits.py", "--workdir", workdir,
                f"--config.data.data_dir={data_dir}", *TINY_SIMCLR)
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir


def test_evaluate_cli_prints_and_appends_one_json_line(simclr_workdir, data_dir):
  out = run_cli("ssl_jax.evaluate", "--workdir", simclr_workdir, "--protocol", "knn",
                f"--data_dir={data_dir}", "--max_train_examples=300")
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["step"] == 4 and result["split"] == "knn"
  for name in ("", "raw_pixels_", "random_init_"):
    for k in knn.KS:
      assert 0.0 <= result[f"{name}top1_k{k}"] <= 1.0
  assert result["raw_pixels_top1_k20"] > 0.5  # digits are easy from pixels
  assert metric_rows(simclr_workdir)[-1] == result
  assert {"train", "eval"} <= {r["split"] for r in metric_rows(simclr_workdir)}


@pytest.mark.parametrize("args,message", [
    (["--protocol", "nearest"], "Unknown protocol"),
    (["--protocol", "perplexity"], "language model"),
    (["--protocol", "knn", "--batch_size=0"], "batch_size"),
    (["--protocol", "knn", "--dataset", "cifar10"],
     "Accepted forms: stdlib or packages:DIR for text encoders; images:DIR or tfds:NAME"),
    (["--protocol", "knn", "--dataset", "packages:/tmp"], "Use images:DIR or tfds:NAME"),
])
def test_evaluate_cli_bad_usage_exits_2(simclr_workdir, data_dir, args, message):
  out = run_cli("ssl_jax.evaluate", "--workdir", simclr_workdir, f"--data_dir={data_dir}", *args)
  assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def color_folder(root, per_class=30, size=12):
  """root/{red,green,blue}/*.png: noisy images of one dominant colour per class."""
  from PIL import Image
  rng = np.random.default_rng(0)
  for c, name in enumerate(("red", "green", "blue")):
    os.makedirs(os.path.join(root, name))
    for i in range(per_class):
      image = rng.integers(0, 120, (size, size, 3))
      image[..., c] += 120
      Image.fromarray(image.astype(np.uint8)).save(os.path.join(root, name, f"{i}.png"))
  return root


def test_evaluate_cli_on_an_image_folder(simclr_workdir, data_dir, tmp_path):
  """--dataset images:DIR: 12x12 colour images resized to the encoder's 8x8, probed by SGD."""
  folder = color_folder(str(tmp_path / "colors"))
  out = run_cli("ssl_jax.evaluate", "--workdir", simclr_workdir, "--protocol", "linear_sgd",
                f"--data_dir={data_dir}", "--dataset", f"images:{folder}",
                "--probe_epochs=20", "--probe_batch_size=32")
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["split"] == "linear_sgd" and result["step"] == 4
  assert result["raw_pixels_top1"] > 0.8 and 0.0 <= result["top1"] <= 1.0  # chance 1/3
  assert 0.0 <= result["random_init_top1"] <= 1.0 and "top5" not in result
  assert metric_rows(simclr_workdir)[-1] == result
  missing = run_cli("ssl_jax.evaluate", "--workdir", simclr_workdir, "--protocol", "knn",
                    f"--data_dir={data_dir}", "--dataset", f"images:{tmp_path}/missing")
  assert missing.returncode == 3 and "no such folder" in missing.stderr


def test_evaluate_cli_without_checkpoint_exits_2(tmp_path):
  out = run_cli("ssl_jax.evaluate", "--workdir", str(tmp_path), "--protocol", "linear")
  assert out.returncode == 2 and "No checkpoints" in out.stderr


def test_fewshot_protocol_in_process(simclr_workdir, data_dir):
  """The Python entry point, with every baseline (the CLI test covers the command)."""
  options = evaluate.Options(max_train_examples=200, max_test_examples=100, batch_size=32,
                             data_dir=data_dir)
  result = evaluate.evaluate(simclr_workdir, "fewshot", options)
  assert result["step"] == 4 and result["split"] == "fewshot"
  assert {f"{p}top1_{n}shot{s}" for p in ("", "random_init_", "raw_pixels_")
          for n in fewshot.SHOTS for s in ("", "_std")} <= set(result)
  assert result["raw_pixels_top1_25shot"] > 0.5
  assert all(0.0 <= v <= 1.0 for k, v in result.items() if "top1" in k and "_ci95" not in k)
  for p in ("", "random_init_", "raw_pixels_"):  # each mean over draws has its interval
    low, high = result[f"{p}top1_10shot_ci95"]
    assert 0.0 <= low <= result[f"{p}top1_10shot"] <= high <= 1.0 and high - low > 0.02


def test_knn_on_a_tfds_dataset(simclr_workdir, data_dir):
  """--dataset tfds:NAME: the TFDS "train" split trains, "test" scores (digits, grayscale,
  to RGB); the result is that of the run's own data, which is the same dataset."""
  options = evaluate.Options(max_train_examples=200, max_test_examples=100, data_dir=data_dir,
                             baselines=False)
  own = evaluate.evaluate(simclr_workdir, "knn", options)
  other = evaluate.evaluate(simclr_workdir, "knn",
                            dataclasses.replace(options, dataset="tfds:digits"))
  assert {k: v for k, v in other.items() if "top1" in k} == {
      k: v for k, v in own.items() if "top1" in k}
  with pytest.raises(ConfigError, match="for the feature protocols"):
    evaluate.evaluate(simclr_workdir, "perplexity",
                      dataclasses.replace(options, dataset="tfds:digits"))


def test_perplexity_covers_the_validation_split(corpus_dir, data_dir, tmp_path):
  """An untrained byte-level GPT checkpoint: perplexity is about the vocabulary size, and
  it is computed over the whole validation split, not the training-time subset."""
  import jax
  from ssl_jax.checkpoint import Checkpointer
  from ssl_jax.data import text
  from ssl_jax.tasks import make_task
  config = tiny_lm_config(f"{corpus_dir}/*.py", data_dir)
  task = make_task(config)
  params, model_state = task.init(jax.random.key(0))
  workdir = str(tmp_path / "lm")
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), async_save=False)
  ckpt.save(3, {"params": params, "model_state": model_state}, None,
            {"config": json.loads(config.to_json_best_effort()), **task.metadata})
  ckpt.close()
  result = evaluate.evaluate(workdir, "perplexity", evaluate.Options(
      data_source=config.data.source, data_dir=data_dir))
  assert result["split"] == "perplexity" and result["step"] == 3
  vocab_size = task.metadata["vocab_size"]
  assert abs(result["loss"] - math.log(vocab_size)) < 0.2  # near uniform predictions, so
  assert 0.8 < result["perplexity"] / vocab_size < 1.25  # a perplexity near the vocabulary
  assert 0 < result["bits_per_byte"] < 10
  T = config.data.seq_len
  sequences = (len(text.load(config.data).eval_tokens) - 1) // T
  assert result["tokens"] > config.eval_steps * config.batch_size * T  # beyond eval_steps
  assert sequences * T - result["tokens"] < config.batch_size * T  # at most a partial batch
  # Intervals resample evaluation batches; perplexity's is the exponent of the loss's.
  for name in ("loss", "bits_per_byte", "accuracy", "perplexity"):
    low, high = result[f"{name}_ci95"]
    assert low < result[name] < high, name
  assert result["perplexity_ci95"] == pytest.approx([math.exp(v) for v in result["loss_ci95"]])
