"""Two-tower pretraining (CLIP, SigLIP) through the loop: the same numbers on 1 device, 8
under jit and 8 under pmap (negatives span the global batch); a text tower started from a
BERT run; the retrieval and zero-shot protocols from the command line. The losses alone:
tests/test_two_tower_losses.py; the data: tests/test_pairs_data.py; the ranking metrics:
tests/test_ranking.py."""
import json
import os
import shutil

import chex
import jax
import numpy as np
import pytest
from PIL import Image

from conftest import load_config, metric_rows, run_cli, same_on_one_jit8_pmap8, set_fields
from ssl_jax import evaluate, train
from ssl_jax.tasks import make_task

PACKAGES = ("json", "email", "http")  # about 300 documented functions, 10 held out
# One block of width 16: compiles in seconds.
TINY = {"batch_size": 16, "eval_steps": 1, "model.num_layers": 1, "model.width": 16,
        "model.num_heads": 2, "model.max_len": 48, "data.text_len": 24, "data.pair_len": 48,
        "towers.embed_dim": 8, "log_every": 1}


@pytest.fixture(scope="module")
def code_tree(tmp_path_factory):
  """A glob of a few standard-library packages' files."""
  root = tmp_path_factory.mktemp("code")
  stdlib = os.path.dirname(os.__file__)
  for name in PACKAGES:
    shutil.copytree(os.path.join(stdlib, name), root / name,
                    ignore=shutil.ignore_patterns("__pycache__"))
  return f"{root}/**/*.py"


@pytest.fixture(scope="module")
def digits_captions(tmp_path_factory):
  """scikit-learn digits as an image-text folder: train/ (64) and test/ (16), each image
  beside the caption "a photo of the digit N"."""
  from sklearn.datasets import load_digits
  digits = load_digits()
  root = tmp_path_factory.mktemp("captions")
  pixels = np.round(digits.images[:80] * 255 / 16).astype(np.uint8)
  for i, (image, label) in enumerate(zip(pixels, digits.target)):
    folder = root / ("train" if i < 64 else "test")
    folder.mkdir(exist_ok=True)
    Image.fromarray(image).save(folder / f"d{i:03d}.png")
    (folder / f"d{i:03d}.txt").write_text(f"a photo of the digit {label}")
  return str(root)


def code_config(objective, tree, data_dir, **changes):
  return load_config(f"{objective}_code", **{"data.source": tree, "data.data_dir": data_dir,
                                             **TINY, **changes})


def image_config(folder, data_dir, **changes):
  """configs/siglip_code.py with a one-block ViT image tower on the digits captions."""
  from configs import common
  config = load_config("siglip_code")
  config.pair_model = common.vit_model("", patch_size=4, pool="mean")
  config.data.image_size = 8
  config.data.image_key = "image"
  config.data.text_key = "text"
  return set_fields(config, {
      "data.name": "image_text_folder", "data.source": folder, "data.data_dir": data_dir,
      "data.eval_split": "test", "pair_model.depth": 1, "pair_model.width": 8,
      "pair_model.num_heads": 2, "pair_model.dtype": "float32", **TINY, **changes})


# Each loss once (both are checked under a device axis in test_two_tower_losses.py), with
# each kind of pair tower: shared text weights, and a ViT.
@pytest.mark.parametrize("objective", ["clip", "siglip_image"])
def test_one_device_equals_eight_under_jit_and_pmap(objective, code_tree, digits_captions,
                                                     data_dir):
  if objective == "siglip_image":
    config = image_config(digits_captions, data_dir)
  else:
    config = code_config(objective, code_tree, data_dir)
  _, want = same_on_one_jit8_pmap8(config)
  # Both learned scalars are trained (they moved under SGD).
  assert float(want.params["log_scale"]) != pytest.approx(np.log(10.0) if "siglip" in objective
                                                          else np.log(1 / 0.07), abs=1e-7)


def test_text_tower_starts_from_a_bert_run(corpus_dir, code_tree, data_dir, tmp_path):
  """towers.text_init_from loads a BERT run's whole encoder into the text tower, with the
  run's tokenizer and its embedding rows (one more than the tokenizer: the mask id)."""
  from ssl_jax.checkpoint import load_step
  shape = {"model.num_layers": 1, "model.width": 16, "model.num_heads": 2,
           "model.max_len": 48}
  bert_dir = str(tmp_path / "bert")
  train.train(load_config("bert_tiny", **{
      "data.source": f"{corpus_dir}/*.py", "data.data_dir": data_dir, "data.seq_len": 32,
      **shape, "batch_size": 8, "total_steps": 2, "eval_every": 2, "eval_steps": 1,
      "checkpoint_every": 2, "log_every": 1}), bert_dir)
  _, bert, _, bert_meta = load_step(bert_dir)
  workdir = str(tmp_path / "siglip")
  config = code_config("siglip", code_tree, data_dir, **{
      "towers.text_init_from": bert_dir, "total_steps": 1, "eval_every": 1,
      "checkpoint_every": 1, "optim.lr": 1e-9, "optim.weight_decay": 0.0})
  task = make_task(config)
  assert task.metadata["tokenizer"] == bert_meta["tokenizer"]
  assert task.metadata["text_vocab_size"] == bert_meta["vocab_size"] + 1  # the mask id
  train.train(config, workdir)
  report = json.load(open(os.path.join(workdir, "init_from.json")))
  assert report["how"] == "encoder placed at text/encoder" and not report["mismatched"]
  assert len(report["loaded"]) == len(jax.tree.leaves(bert))
  assert all(name.startswith("params/text/encoder/") for name in report["loaded"])
  _, params, _, _ = load_step(workdir)
  chex.assert_trees_all_close(params["text"]["encoder"], bert, atol=1e-6)


def test_retrieval_from_the_command_line(code_tree, data_dir, tmp_path):
  workdir = str(tmp_path / "clip")
  train.train(code_config("clip", code_tree, data_dir, **{
      "total_steps": 3, "eval_every": 3, "checkpoint_every": 3}), workdir)
  assert [r["step"] for r in metric_rows(workdir) if r["split"] == "eval"] == [3]
  out = run_cli("ssl_jax.evaluate", "--workdir", workdir, "--protocol", "retrieval",
                "--show", "2", "--data_source", code_tree, "--data_dir", data_dir)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["split"] == "retrieval" and result["step"] == 3 and result["pairs"] >= 8
  for model in ("", "random_init_", "tfidf_"):
    for direction in ("text_to_code_", "code_to_text_"):
      r = [result[f"{model}{direction}recall@{k}"] for k in (1, 5, 10)]
      assert 0.0 <= r[0] <= r[1] <= r[2] <= 1.0
      assert r[0] <= result[f"{model}{direction}mrr"] <= 1.0
      low, high = result[f"{model}{direction}mrr_ci95"]  # over the queries
      assert 0.0 <= low <= result[f"{model}{direction}mrr"] <= high <= 1.0
  # TF-IDF finds most docstrings' functions in a pool this small.
  assert result["tfidf_text_to_code_mrr"] > 0.3
  listing = out.stdout.splitlines()[:-1]
  assert sum(line.startswith("== ") for line in listing) == 2
  assert sum(line.startswith("query ") for line in listing) == 4
  # Each query shows where its right match is: marked in the top 3, or its rank below.
  assert sum(line.startswith("  * ") or "the right one is at rank" in line
             for line in listing) == 4
  assert metric_rows(workdir)[-1]["split"] == "retrieval"
  assert metric_rows(workdir)[-1]["tfidf_text_to_code_mrr_ci95"] == \
      result["tfidf_text_to_code_mrr_ci95"]  # metrics.jsonl keeps the intervals


def test_zero_shot_from_the_command_line(digits_captions, data_dir, tmp_path):
  """The image tower starts from a SimCLR run's ViT (towers.pair_init_from); zero-shot
  classification reads the class names of the digits dataset."""
  simclr_dir = str(tmp_path / "simclr")
  train.train(load_config("simclr_digits", **{
      "data.data_dir": data_dir, "model.name": "vit", "model.depth": 1, "model.width": 8,
      "model.num_heads": 2, "model.patch_size": 4, "batch_size": 16, "total_steps": 1,
      "eval_every": 1, "eval_steps": 1, "checkpoint_every": 1}), simclr_dir)
  workdir = str(tmp_path / "siglip_image")
  train.train(image_config(digits_captions, data_dir, **{
      "total_steps": 2, "eval_every": 2, "checkpoint_every": 2,
      "towers.pair_init_from": simclr_dir}), workdir)
  report = json.load(open(os.path.join(workdir, "init_from.json")))
  assert report["how"] == "encoder placed at pair/encoder" and not report["mismatched"]
  assert report["loaded"] and not report["new"]
  base = ["--workdir", workdir, "--data_source", digits_captions, "--data_dir", data_dir]
  out = run_cli("ssl_jax.evaluate", *base, "--protocol", "zeroshot", "--dataset",
                "tfds:digits", "--prompt", "a photo of the digit {}", "--max_test_examples",
                "100")
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["classes"] == 10 and result["chance"] == 0.1 and result["examples"] == 100
  assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["random_init_accuracy"] <= 1.0
  missing = run_cli("ssl_jax.evaluate", *base, "--protocol", "zeroshot")
  assert missing.returncode == 2 and "--dataset images:DIR" in missing.stderr


def test_evaluation_options_are_checked():
  assert "--prompt" in evaluate.options_error(evaluate.Options(prompt="no slot"))
  assert "--show" in evaluate.options_error(evaluate.Options(show=-1))
  assert evaluate.options_error(evaluate.Options(show=3)) is None


def test_shared_or_separate_text_towers(code_tree, data_dir):
  """pair_model.name="shared" runs code through the text tower (own projection only); a
  text model name gives the code side a Transformer of its own."""
  shared = code_config("siglip", code_tree, data_dir)
  separate = code_config("siglip", code_tree, data_dir)
  separate.pair_model = separate.model.copy_and_resolve_references()
  separate.pair_model.num_layers = 2
  trees = {name: jax.eval_shape(make_task(c).init, jax.random.key(0))[0]
           for name, c in (("shared", shared), ("separate", separate))}
  assert "pair" not in trees["shared"] and "pair_proj" in trees["shared"]
  text, pair = trees["separate"]["text"]["encoder"], trees["separate"]["pair"]["encoder"]
  assert "block1" in pair and "block1" not in text
  assert set(trees["separate"]) == set(trees["shared"]) | {"pair"}
