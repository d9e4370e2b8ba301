"""Image encoders exported as transformers folders (ViTModel, SiglipVisionModel, ResNetModel)
compute ssl_jax's features from the same uint8 images, untrained (every variable random) and
after a few training steps, and import back to identical variables."""
import functools
import json
import os

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # folders are local; nothing is fetched
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import optax  # noqa: E402

from ssl_jax import convert  # noqa: E402
from ssl_jax.convert import resnet as resnet_convert  # noqa: E402
from ssl_jax.convert import vit as vit_convert  # noqa: E402
from ssl_jax.convert.image_processor import image_processor_config  # noqa: E402
from ssl_jax.errors import ConfigError  # noqa: E402
from ssl_jax.models.encoders import image_encoder  # noqa: E402
from ssl_jax.models.inputs import apply_model, model_input, split_variables  # noqa: E402

TOL = 1e-4
VIT = dict(name="vit", patch_size=4, depth=2, width=32, num_heads=4, mlp_ratio=4)
# (model fields, image size, train): 21 is odd at the stem, the pool and the strided stages,
# where padding conventions would show. ResNet50 (bottleneck blocks) is checked untrained
# only: its training step alone would take a third of this file's time.
CASES = {
    "vit_cls": (dict(VIT, pool="cls"), 16, True),
    "vit_mean": (dict(VIT, pool="mean"), 16, True),
    "resnet18": (dict(name="resnet", depth=18, stem="imagenet", width=8), 21, True),
    "resnet50": (dict(name="resnet", depth=50, stem="imagenet", width=4), 16, False),
}
# Only the variables the steps produce matter here, not the speed of the step.
_FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _module(fields):
  return vit_convert if fields["name"] == "vit" else resnet_convert


def _images(seed, n, size):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _random_variables(model, x, seed):
  """Every variable random, running statistics included (a stronger check than flax's init,
  whose biases are 0 and scales 1). Drawn with numpy: XLA:CPU takes seconds to compile
  jax.random for each 4-D kernel shape."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = path[-1].key
    if name in ("scale", "var"):
      return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), jnp.float32)
    std = 1 / np.sqrt(np.prod(leaf.shape[:-1])) if name == "kernel" else 0.1
    return jnp.asarray(rng.normal(0, std, leaf.shape), jnp.float32)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
  return jax.tree_util.tree_map_with_path(draw, shapes)


def _trained(model, variables, images_BxHxWxC, steps=3):
  """Adam steps on a regression of the features; ResNets update batch_stats (train mode)."""
  params, state = split_variables(variables)
  x = model_input(jnp.asarray(images_BxHxWxC, jnp.float32) / 255.0)
  target_BxD = jax.random.normal(jax.random.PRNGKey(1), (x.shape[0], model.features_dim))
  optimizer = optax.adam(1e-2)

  def step(params, state, opt_state):
    def loss_fn(params):
      features, new_state = apply_model(model, params, state, x, train=True)
      return jnp.mean((features - target_BxD) ** 2), new_state
    (_, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), state, opt_state

  opt_state = optimizer.init(params)
  step = jax.jit(step).lower(params, state, opt_state).compile(compiler_options=_FAST_COMPILE)
  for _ in range(steps):
    params, state, opt_state = step(params, state, opt_state)
  return {"params": params, **state}


def _hf_features(model, pixel_values, fields):
  with torch.no_grad():
    out = model(pixel_values=pixel_values)
  if fields["name"] == "resnet":
    return out.pooler_output.flatten(1).numpy()
  if fields["pool"] == "cls":
    # The identity pooler makes pooler_output the same features.
    np.testing.assert_allclose(out.pooler_output.numpy(), out.last_hidden_state[:, 0].numpy(),
                               atol=1e-6)
    return out.last_hidden_state[:, 0].numpy()
  return out.last_hidden_state.mean(1).numpy()


def _assert_same_tree(a, b):
  flat_a, tree_a = jax.tree_util.tree_flatten(a)
  flat_b, tree_b = jax.tree_util.tree_flatten(b)
  assert tree_a == tree_b
  for x, y in zip(flat_a, flat_b):
    assert np.asarray(y).dtype == np.float32
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_parity_and_round_trip(case, tmp_path):
  fields, size, train = CASES[case]
  cfg = ml_collections.ConfigDict(fields)
  module = _module(fields)
  assert module.unsupported(cfg) is None
  model = image_encoder(cfg)
  features = jax.jit(functools.partial(model.apply, train=False))
  images = _images(0, 4, size)
  x = model_input(jnp.asarray(images, jnp.float32) / 255.0)
  variables = _random_variables(model, x[:1], seed=0)
  diffs = {}
  for stage in ("random", "trained") if train else ("random",):
    if stage == "trained":
      before = variables
      variables = _trained(model, variables, _images(1, 8, size))
      if "batch_stats" in before:  # train mode moved the running statistics
        assert not np.array_equal(before["batch_stats"]["BatchNorm_0"]["mean"],
                                  variables["batch_stats"]["BatchNorm_0"]["mean"])
    hf_config, tensors = module.to_hf(variables, cfg, None)
    out = str(tmp_path / stage)
    convert.save(out, hf_config, tensors)
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
      json.dump(module.image_processor_config(size), f)

    hf_model, info = transformers.AutoModel.from_pretrained(out, output_loading_info=True)
    assert type(hf_model).__name__ == hf_config["architectures"][0]
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]), info
    processor = transformers.AutoImageProcessor.from_pretrained(out)
    pixels = processor(list(images), return_tensors="pt")["pixel_values"]
    ours_BxD = np.asarray(features(variables, x))
    theirs_BxD = _hf_features(hf_model.eval(), pixels, fields)
    diffs[stage] = float(np.abs(ours_BxD - theirs_BxD).max())
    assert diffs[stage] < TOL, (stage, diffs)

    # Import: our own export and the folder transformers itself saves give the variables back.
    back, back_fields = module.from_hf(*convert.load(out))
    _assert_same_tree(variables, back)
    assert back_fields == fields
    resaved = str(tmp_path / f"{stage}_resaved")
    hf_model.save_pretrained(resaved)
    back, back_fields = module.from_hf(*convert.load(resaved))
    _assert_same_tree(variables, back)
    assert back_fields == fields
  print(f"{case}: max |ours - transformers| {diffs}")


@pytest.mark.parametrize("size", [16, 21])
def test_image_processor_matches_model_input(size, tmp_path):
  with open(tmp_path / "preprocessor_config.json", "w") as f:
    json.dump(image_processor_config(size), f)
  processor = transformers.AutoImageProcessor.from_pretrained(str(tmp_path))
  images = _images(2, 3, size)
  theirs = processor(list(images), return_tensors="np")["pixel_values"]
  ours = np.asarray(model_input(images / 255.0)).transpose(0, 3, 1, 2)
  assert theirs.shape == ours.shape
  np.testing.assert_allclose(theirs, ours, atol=1e-6, rtol=0)


def test_cifar_stem_is_refused():
  cfg = ml_collections.ConfigDict(dict(name="resnet", depth=18, stem="cifar", width=8))
  reason = resnet_convert.unsupported(cfg)
  assert reason and "cifar" in reason and "max pool" in reason
  variables = _random_variables(image_encoder(cfg), jnp.zeros((1, 16, 16, 3)), seed=0)
  with pytest.raises(ConfigError, match="cifar"):
    resnet_convert.to_hf(variables, cfg, None)


@pytest.mark.parametrize("model_type, change, match", [
    ("vit", {"hidden_act": "gelu"}, "tanh-approximated GELU"),
    ("vit", {"hidden_act": "gelu_new", "layer_norm_eps": 1e-12}, "layer_norm_eps"),
    ("siglip_vision_model", {"image_size": [16, 32]}, "square"),
    ("resnet", {"downsample_in_bottleneck": True}, "v1.5"),
    ("resnet", {"depths": [1, 1, 1, 1]}, "none of ssl_jax's ResNets"),
])
def test_import_refuses_other_computations(model_type, change, match):
  """Configs ssl_jax's encoders cannot reproduce are refused before any tensor is read."""
  module = resnet_convert if model_type == "resnet" else vit_convert
  with pytest.raises(ConfigError, match=match):
    module.from_hf({"model_type": model_type, **change}, {})
