"""--config.init_from: a fresh run starts from another run's (or an export's) weights; a
resumed run never reads them; conflicts are refused before the workdir is touched."""
import dataclasses
import json
import os
import shutil

import chex
import numpy as np
import pytest

from conftest import run_cli, tiny_lm_config, tiny_lm_flags
from ssl_jax import init_from, tasks, train
from ssl_jax.checkpoint import load_latest
from ssl_jax.errors import ConfigError


@pytest.fixture(scope="module")
def source_run(corpus_dir, data_dir, tmp_path_factory):
  """A tiny GPT trained 6 steps: the weights every test starts from."""
  workdir = str(tmp_path_factory.mktemp("source"))
  train.train(tiny_lm_config(f"{corpus_dir}/*.py", data_dir, total_steps=6), workdir)
  return workdir


def frozen_task(config, axis_name):
  """The GPT task with a zero loss: with no weight decay the weights never move, so a run's
  checkpoint holds exactly the weights it started from."""
  task = tasks.make_task(config, axis_name)

  def loss_fn(params, model_state, batch, rng):
    loss, aux = task.loss_fn(params, model_state, batch, rng)
    return loss * 0.0, aux
  return dataclasses.replace(task, loss_fn=loss_fn)


def _frozen_config(corpus_dir, data_dir, **changes):
  cfg = tiny_lm_config(f"{corpus_dir}/*.py", data_dir, total_steps=2, eval_every=2,
                       checkpoint_every=2, **changes)
  cfg.optim.weight_decay = 0.0
  return cfg


@pytest.mark.parametrize("parallel,fsdp", [("jit", 2), ("pmap", 1)])
def test_fresh_run_starts_from_the_source_weights(source_run, corpus_dir, data_dir, tmp_path,
                                                   parallel, fsdp):
  workdir = str(tmp_path / "run")
  cfg = _frozen_config(corpus_dir, data_dir, init_from=f"{source_run}:6", parallel=parallel)
  cfg.mesh.fsdp = fsdp  # parameters split over 2 devices: each loaded shard lands in place
  train.train(cfg, workdir, make_task=frozen_task)
  _, source, _ = load_latest(source_run)
  _, started, _ = load_latest(workdir)
  chex.assert_trees_all_equal(started["params"], source["params"])
  report = json.load(open(os.path.join(workdir, init_from.REPORT_FILE)))
  assert report["source"] == f"workdir {source_run} step 6" and report["how"] == "as saved"
  assert len(report["loaded"]) == 15 and not report["new"] and not report["mismatched"]


def test_resuming_never_reads_init_from(source_run, corpus_dir, data_dir, tmp_path, capsys):
  copy = str(tmp_path / "pretrained")
  shutil.copytree(source_run, copy)
  workdir = str(tmp_path / "finetune")
  cfg = tiny_lm_config(f"{corpus_dir}/*.py", data_dir, total_steps=12, init_from=copy)
  train.train(cfg, workdir)
  _, straight, _ = load_latest(workdir)
  # Preempted after step 6; meanwhile the pretrained weights went away.
  shutil.rmtree(os.path.join(workdir, "checkpoints", "12"))
  shutil.rmtree(copy)
  capsys.readouterr()
  train.train(cfg, workdir)
  out = capsys.readouterr().out
  assert "Resumed from the checkpoint at step 6" in out and "init_from applies only" in out
  _, resumed, _ = load_latest(workdir)
  chex.assert_trees_all_equal(resumed["params"], straight["params"])


def test_shape_conflict_is_refused_before_the_workdir_is_touched(source_run, corpus_dir,
                                                                  data_dir, tmp_path):
  workdir = str(tmp_path / "wider")
  cfg = tiny_lm_config(f"{corpus_dir}/*.py", data_dir, init_from=source_run)
  cfg.model.width = 64
  with pytest.raises(ConfigError, match=r"have other shapes.*init_from_strict=false"):
    train.train(cfg, workdir)
  assert not os.path.exists(os.path.join(workdir, "run.json"))


def test_relaxed_load_takes_what_fits_and_reports_the_rest(source_run, corpus_dir, data_dir,
                                                           tmp_path, capsys):
  # Two layers from a one-layer source, with a narrower MLP: block0's attention and the
  # embeddings load, block0's MLP conflicts, block1 is new.
  workdir = str(tmp_path / "deeper")
  cfg = _frozen_config(corpus_dir, data_dir, init_from=source_run, init_from_strict=False)
  cfg.model.num_layers, cfg.model.mlp_ratio = 2, 2
  train.train(cfg, workdir, make_task=frozen_task)
  out = capsys.readouterr().out
  assert "mismatched (initialised)" in out and "new (initialised)" in out
  report = json.load(open(os.path.join(workdir, init_from.REPORT_FILE)))
  assert report["mismatched"] == [
      {"name": "params/block0/mlp_in/bias", "run": [64], "source": [128]},
      {"name": "params/block0/mlp_in/kernel", "run": [32, 64], "source": [32, 128]},
      {"name": "params/block0/mlp_out/kernel", "run": [64, 32], "source": [128, 32]}]
  assert len(report["new"]) == 12 and all(n.startswith("params/block1/") for n in report["new"])
  _, source, _ = load_latest(source_run)
  _, started, _ = load_latest(workdir)
  chex.assert_trees_all_equal(started["params"]["block0"]["attn"],
                              source["params"]["block0"]["attn"])
  chex.assert_trees_all_equal(started["params"]["embed"], source["params"]["embed"])


def test_refusals_name_the_reason(source_run, corpus_dir, data_dir, tmp_path):
  # An LSTM shares no variable names with a GPT: through the command line, exit 2.
  workdir = str(tmp_path / "lstm")
  out = run_cli("ssl_jax.main", "--workdir", workdir, *tiny_lm_flags(corpus_dir, data_dir),
                "--config.model.name=lstm", f"--config.init_from={source_run}")
  assert out.returncode == 2 and "Nothing in init_from" in out.stderr, out.stderr[-1500:]
  assert "Traceback" not in out.stderr and not os.path.exists(os.path.join(workdir, "run.json"))
  for says, spec in {"No checkpoint at step 5": f"{source_run}:5",
                     "no such directory": f"{tmp_path}/missing"}.items():
    with pytest.raises(ConfigError, match=says):
      init_from.read(spec)


def test_split_spec_keeps_urls_and_reads_steps():
  assert init_from.split_spec("runs/gpt:1200") == ("runs/gpt", 1200)
  assert init_from.split_spec("gs://bucket/runs/gpt:300") == ("gs://bucket/runs/gpt", 300)
  assert init_from.split_spec("gs://bucket/runs/gpt") == ("gs://bucket/runs/gpt", None)
  assert init_from.split_spec("exports/gpt") == ("exports/gpt", None)


def test_same_shape_differences_are_noted():
  import ml_collections
  run = ml_collections.ConfigDict({"name": "gpt", "position": "rope", "layer_norm_eps": 1e-6})
  notes = init_from.computation_differences(
      {"name": "gpt", "position": "rope", "layer_norm_eps": 1e-5}, run)
  assert len(notes) == 1 and "model.layer_norm_eps=1e-05" in notes[0]
  assert not init_from.computation_differences({"name": "gpt", "position": "rope"}, run)


def test_an_encoder_is_placed_where_the_run_keeps_its_encoder():
  """A SimCLR run's encoder (params/encoder, batch_stats/encoder) into a BYOL run's online
  encoder; the heads stay behind, the predictor is new."""
  w, s = np.ones((3, 4), np.float32), np.zeros((4,), np.float32)
  source = init_from.Source(
      "runs/simclr", "workdir", 300,
      {"params": {"encoder": {"conv": {"kernel": w}}, "head": {"out": {"kernel": w}}},
       "batch_stats": {"encoder": {"bn": {"mean": s}}}},
      "encoder", {}, {})
  target = {"params/online/encoder/conv/kernel": (3, 4), "params/online/head/out/kernel": (4, 2),
            "params/predictor/out/kernel": (2, 2), "batch_stats/online/encoder/bn/mean": (4,)}
  arrays, report = init_from.match(target, "online/encoder", source)
  assert report.how == "encoder placed at online/encoder"
  assert sorted(arrays) == ["batch_stats/online/encoder/bn/mean",
                            "params/online/encoder/conv/kernel"]
  assert [n for n, _ in report.new] == ["params/online/head/out/kernel",
                                        "params/predictor/out/kernel"]
  assert [n for n, _ in report.unused] == []  # the placed view reads the encoder only
