"""The vision methods on 1 device, 8 devices under jit and 8 under pmap: the same numbers.

Every batch-level term (DINO's centre, Barlow Twins' correlation, VICReg's variances and
covariances, MoCo v3's negatives, batch norm in the heads) is computed over the global
batch, and every view and mask is drawn per global example, so two training steps give the
same losses, parameters and model state whatever the device count or wrapper.
"""
import jax
import jax.numpy as jnp
import pytest

from conftest import load_config, same_on_one_jit8_pmap8
from ssl_jax.tasks import make_task

# A one-block ViT compiles in seconds; the heads keep their batch norms.
TINY_VIT = {"batch_size": 16, "eval_steps": 1, "model.name": "vit", "model.size": "",
            "model.depth": 1, "model.width": 8, "model.num_heads": 2, "model.patch_size": 2}
TINY_HEAD = {"head.hidden_dim": 16, "head.out_dim": 8}
METHODS = {
    "mocov3": {**TINY_HEAD, "mocov3.predictor_hidden_dim": 16},
    "barlow_twins": TINY_HEAD,
    "vicreg": TINY_HEAD,
    "simsiam": {**TINY_HEAD, "simsiam.predictor_hidden_dim": 4},
    # Two local 4x4 crops: the ViT's positions are resized for them.
    "dino": {**TINY_HEAD, "dino.num_prototypes": 32, "augment.local_crops": 2},
    "mae": {"mae.decoder_width": 8, "mae.decoder_depth": 1, "mae.decoder_heads": 2},
}


@pytest.mark.parametrize("method", METHODS)
def test_one_device_equals_eight_under_jit_and_pmap(method, data_dir):
  config = load_config(f"{method}_digits", **{"data.data_dir": data_dir, **TINY_VIT,
                                              **METHODS[method]})
  same_on_one_jit8_pmap8(config)


@pytest.mark.parametrize("method", METHODS)
def test_evaluation_finds_the_encoder(method, data_dir):
  """metadata["encoder_path"] leads to exactly the variables of the encoder that evaluation
  builds from config.model (at the pretraining image size, whatever crops DINO saw)."""
  from ssl_jax.evaluate.image_transfer import encoder_variables
  from ssl_jax.models import encoders
  from ssl_jax.models.inputs import split_variables
  config = load_config(f"{method}_digits", **{"data.data_dir": data_dir, **TINY_VIT,
                                              **METHODS[method]})
  task = make_task(config)
  params, model_state = jax.eval_shape(task.init, jax.random.key(0))
  found = encoder_variables(params, model_state, task.metadata["encoder_path"])
  S = config.data.image_size
  want = split_variables(jax.eval_shape(
      encoders.image_encoder(config.model).init, jax.random.key(0), jnp.zeros((1, S, S, 3))))
  shapes = lambda tree: jax.tree.map(lambda x: x.shape, tree)
  assert shapes(found[0]) == shapes(want[0])
  assert shapes(found[1]) == shapes(want[1])


def test_mae_trains_and_fine_tunes(data_dir, tmp_path):
  """The evaluation command on MAE with fine-tuning, its standard protocol (the other
  methods' encoders are found as test_evaluation_finds_the_encoder shows)."""
  import json
  from conftest import metric_rows, run_cli
  from ssl_jax import train
  workdir = str(tmp_path / "mae")
  # The ViT-tiny preset, one block deep: the checkpoint records width and heads as 0.
  config = load_config("mae_digits", **{
      "data.data_dir": data_dir, **TINY_VIT, "model.size": "tiny", "model.width": 0,
      "model.num_heads": 0, **METHODS["mae"], "total_steps": 2, "log_every": 1,
      "eval_every": 2, "checkpoint_every": 2})
  train.train(config, workdir)
  assert [r["step"] for r in metric_rows(workdir) if r["split"] == "train"] == [1, 2]
  out = run_cli("ssl_jax.evaluate", "--workdir", workdir, "--protocol", "finetune",
                "--data_dir", data_dir, "--max_train_examples", "100",
                "--max_test_examples", "50", "--finetune_steps", "4")
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["split"] == "finetune" and result["step"] == 2
  assert 0.0 < result["top1"] <= 1.0 and 0.0 < result["random_init_top1"] <= 1.0
