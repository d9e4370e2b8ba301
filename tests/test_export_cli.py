"""python -m ssl_jax.export end to end: a trained run becomes a folder that transformers
loads with Auto classes (model, tokenizer, image processor) and that computes the run's
outputs; exporting then importing gives the checkpoint's exact variables; what cannot be
exported exactly, or where, is refused with exit 2."""
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
os.environ["HF_HUB_OFFLINE"] = "1"

import chex  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402

from conftest import load_config, run_cli, tiny_lm_config, tiny_simclr_config  # noqa: E402
from ssl_jax import export, init_from, models, train  # noqa: E402
from ssl_jax.checkpoint import load_step  # noqa: E402
from ssl_jax.data import tokenizers  # noqa: E402
from ssl_jax.errors import ConfigError  # noqa: E402
from ssl_jax.models import encoders  # noqa: E402
from ssl_jax.models.inputs import model_input  # noqa: E402

TEXT = 'def f(x):\n    return {"ä": x ** 2}  # café\t\t\n'


@pytest.fixture(scope="module")
def gpt_run(corpus_dir, data_dir, tmp_path_factory):
  """gpt_tiny's layout (rotary positions) shrunk, 12 steps: checkpoints at 6 and 12."""
  workdir = str(tmp_path_factory.mktemp("gpt"))
  train.train(tiny_lm_config(f"{corpus_dir}/*.py", data_dir), workdir)
  return workdir


def test_cli_exports_a_folder_transformers_runs_like_ssl_jax(gpt_run, tmp_path):
  out = str(tmp_path / "hf")
  done = run_cli("ssl_jax.export", "--workdir", gpt_run, "--out", out)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "GPTNeoXForCausalLM" in done.stdout and "step 12" in done.stdout
  assert {"config.json", "model.safetensors", "tokenizer.json",
          "tokenizer_config.json"} <= set(os.listdir(out))
  step, params, _, metadata = load_step(gpt_run)
  tok = tokenizers.from_spec(metadata["tokenizer"])
  hf_tok = transformers.AutoTokenizer.from_pretrained(out)
  ids = hf_tok(TEXT)["input_ids"]
  assert ids == tok.encode(TEXT).tolist()
  hf_model = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
  with torch.no_grad():
    hf_logits = hf_model(torch.tensor([ids])).logits.numpy()
  cfg = ml_collections.ConfigDict(metadata["config"]["model"])
  ours = models.language_model(cfg, tok.vocab_size).apply(
      {"params": params}, jnp.asarray([ids], jnp.int32))
  assert np.abs(hf_logits - np.asarray(ours)).max() < 1e-4
  # Export then import: the checkpoint's own arrays, bit for bit.
  source = init_from.read(out)
  chex.assert_trees_all_equal(source.variables["params"], jax_tree_to_numpy(params))
  assert source.step == step and source.metadata["tokenizer"] == metadata["tokenizer"]


def jax_tree_to_numpy(tree):
  return {k: jax_tree_to_numpy(v) if hasattr(v, "items") else np.asarray(v)
          for k, v in tree.items()}


def test_step_flag_and_refusals(gpt_run, tmp_path):
  out = str(tmp_path / "at6")
  hf_config = export.export(gpt_run, out, step=6, log=lambda msg: None)
  assert hf_config["ssl_jax"]["step"] == 6 and init_from.read(out).step == 6
  assert json.load(open(os.path.join(out, "config.json")))["architectures"] == [
      "GPTNeoXForCausalLM"]
  (tmp_path / "mine").mkdir()
  (tmp_path / "mine" / "notes.txt").write_text("keep me")
  cases = {"No checkpoint at step 5": ["--out", str(tmp_path / "x"), "--step", "5"],
           "not an earlier export": ["--out", str(tmp_path / "mine")]}
  for says, flags in cases.items():
    done = run_cli("ssl_jax.export", "--workdir", gpt_run, *flags)
    assert done.returncode == 2 and says in done.stderr, done.stderr[-1500:]
    assert "Traceback" not in done.stderr
  assert os.listdir(tmp_path / "mine") == ["notes.txt"] and not os.path.exists(tmp_path / "x")


def test_bert_exports_its_masked_lm_head(corpus_dir, data_dir, tmp_path):
  """bert_tiny with the flags of its exportable layout (learned positions, transform head)."""
  workdir, out = str(tmp_path / "bert"), str(tmp_path / "hf")
  cfg = tiny_lm_config(f"{corpus_dir}/*.py", data_dir, total_steps=4, eval_every=4,
                       checkpoint_every=4)
  base = load_config("bert_tiny")
  cfg.objective, cfg.mlm = base.objective, base.mlm
  cfg.model.name, cfg.model.position, cfg.model.mlm_head = "bert", "learned", "transform"
  train.train(cfg, workdir)
  hf_config = export.export(workdir, out, log=lambda msg: None)
  assert hf_config["architectures"] == ["MegatronBertForMaskedLM"]
  _, params, _, metadata = load_step(workdir)
  hf_tok = transformers.AutoTokenizer.from_pretrained(out)
  assert hf_tok.mask_token_id == metadata["mask_id"]
  ids = hf_tok(TEXT[:30])["input_ids"]
  ids[3] = hf_tok.mask_token_id
  hf_model = transformers.AutoModelForMaskedLM.from_pretrained(out).eval()
  with torch.no_grad():
    hf_logits = hf_model(torch.tensor([ids])).logits.numpy()
  model = models.language_model(ml_collections.ConfigDict(metadata["config"]["model"]),
                                metadata["vocab_size"] + 1)
  ours = model.apply({"params": params}, jnp.asarray([ids], jnp.int32))
  assert np.abs(hf_logits - np.asarray(ours)).max() < 1e-4


# The mean-pooled ViT (the configs' default); tests/test_export_vision.py covers ViTModel.
@pytest.mark.parametrize("pool,architecture", [("mean", "SiglipVisionModel")])
def test_image_encoder_exports_with_its_image_processor(data_dir, tmp_path, pool, architecture):
  workdir, out = str(tmp_path / "simclr"), str(tmp_path / "hf")
  cfg = tiny_simclr_config(data_dir, **{
      "model.name": "vit", "model.pool": pool, "model.depth": 1, "model.width": 16,
      "model.num_heads": 2, "total_steps": 2, "eval_every": 2, "checkpoint_every": 2})
  train.train(cfg, workdir)
  hf_config = export.export(workdir, out, log=lambda msg: None)
  assert hf_config["architectures"] == [architecture]
  _, params, model_state, metadata = load_step(workdir)
  size = metadata["image_size"]
  images = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
  processor = transformers.AutoImageProcessor.from_pretrained(out)
  pixels = processor(images=list(images), return_tensors="pt")["pixel_values"]
  np.testing.assert_allclose(pixels.numpy().transpose(0, 2, 3, 1),
                             np.asarray(model_input(images / 255.0)), atol=1e-6)
  hf_model = transformers.AutoModel.from_pretrained(out).eval()
  with torch.no_grad():
    hidden = hf_model(pixel_values=pixels).last_hidden_state.numpy()
  hf_features = hidden[:, 0] if pool == "cls" else hidden.mean(1)
  encoder = encoders.image_encoder(ml_collections.ConfigDict(metadata["config"]["model"]))
  ours = encoder.apply({"params": params[metadata["encoder_path"]]},
                       model_input(jnp.asarray(images) / 255.0))
  assert np.abs(hf_features - np.asarray(ours)).max() < 1e-4


def test_cifar_stem_resnet_is_refused_with_the_difference(monkeypatch, tmp_path):
  """simclr_digits' ResNet (3x3 stride-1 stem, no max pool) has no exact counterpart."""
  config = load_config("simclr_digits").to_dict()
  metadata = {"config": config, "encoder_path": "encoder", "image_size": 8}
  monkeypatch.setattr(export, "load_step", lambda workdir, step: (3, {}, {}, metadata))
  with pytest.raises(ConfigError, match=r"cannot be exported exactly: model.stem='cifar'"):
    export.export("runs/simclr", str(tmp_path / "hf"), log=lambda msg: None)
  assert not os.path.exists(tmp_path / "hf")


def _result(stdout: str) -> dict:
  row = json.loads(stdout.strip().splitlines()[-1])
  return {k: v for k, v in row.items() if not k.endswith("seconds")}


def test_evaluate_an_export_on_another_dataset(gpt_run, package_tree, data_dir, tmp_path):
  """The exported weights score exactly what the run's own checkpoint scores, on a package
  tree the model never saw; with --workdir the row is appended there."""
  out = str(tmp_path / "hf")
  export.export(gpt_run, out, log=lambda msg: None)
  flags = ["--protocol", "linear", "--dataset", f"packages:{package_tree}", "--data_dir",
           data_dir, "--max_train_examples", "60", "--max_test_examples", "30"]
  own = run_cli("ssl_jax.evaluate", "--workdir", gpt_run, *flags)
  results = str(tmp_path / "results")
  exported = run_cli("ssl_jax.evaluate", "--init_from", out, "--workdir", results, *flags)
  assert own.returncode == 0 and exported.returncode == 0, exported.stderr[-2000:]
  assert _result(exported.stdout) == _result(own.stdout)
  assert {"top1", "bag_of_tokens_top1", "random_init_top1"} <= set(_result(own.stdout))
  rows = [json.loads(line) for line in open(os.path.join(results, "metrics.jsonl"))]
  assert [r["split"] for r in rows] == ["linear"] and rows[0]["step"] == 12


def test_evaluate_a_transformers_vit_from_outside(data_dir, tmp_path):
  """A ViTModel made by transformers (from a config, saved as safetensors) is probed by
  ssl_jax's kNN on digits; without --dataset the refusal says what to pass."""
  folder = str(tmp_path / "vit")
  config = transformers.ViTConfig(image_size=8, patch_size=4, hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64,
                                  hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
  torch.manual_seed(0)
  transformers.ViTModel(config).save_pretrained(folder)
  from ssl_jax import evaluate
  with pytest.raises(ConfigError, match="--dataset images:DIR"):
    evaluate.load_run(None, evaluate.Options(init_from=folder))
  flags = ["--init_from", folder, "--protocol", "knn", "--data_dir", data_dir]
  done = run_cli("ssl_jax.evaluate", *flags, "--dataset", "tfds:digits")
  assert done.returncode == 0, done.stderr[-2000:]
  result = _result(done.stdout)
  assert result["step"] == 0 and 0.1 < result["top1_k20"] <= 1.0
  assert "random_init_top1_k20" in result and "raw_pixels_top1_k20" in result


def test_evaluate_with_two_processes_scores_what_one_does(gpt_run, data_dir):
  """Two processes joined on 127.0.0.1 (2 CPU devices each) share the feature extraction
  and print, once, the single process's result."""
  import subprocess
  import sys

  from conftest import REPO, free_port
  flags = ["--workdir", gpt_run, "--protocol", "linear", "--data_dir", data_dir,
           "--max_train_examples", "60", "--max_test_examples", "30", "--baselines=false"]
  single = run_cli("ssl_jax.evaluate", *flags)
  assert single.returncode == 0, single.stderr[-2000:]
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  port = free_port()
  procs = [subprocess.Popen(
      [sys.executable, "-m", "ssl_jax.evaluate", *flags, "--coordinator_address",
       f"127.0.0.1:{port}", "--num_processes", "2", "--process_id", str(i)],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:]
  rows = [line for line in outs[0][0].splitlines() + outs[1][0].splitlines()
          if line.startswith("{")]
  assert len(rows) == 1 and _result(rows[0]) == _result(single.stdout)
