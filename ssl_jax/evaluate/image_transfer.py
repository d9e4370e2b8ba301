"""Transfer source for image encoders (SimCLR, BYOL): the encoder out of a checkpoint,
plus the labelled probe and test splits of the dataset it was trained on.

The checkpoint's metadata["encoder_path"] ("a/b") says where the encoder's variables sit
in params and in each model_state collection; a new image objective only has to set it.
"""
import functools

import jax.numpy as jnp

from ssl_jax.data import augment, images
from ssl_jax.evaluate.transfer import Encoder, Labelled, Transfer
from ssl_jax.models import encoders
from ssl_jax.models.inputs import model_input, split_variables


def _subtree(tree, path: str):
  for part in path.split("/"):
    if not isinstance(tree, dict) or part not in tree:
      return None
    tree = tree[part]
  return tree


def encoder_variables(params, model_state, path: str):
  """(encoder params, encoder state) from a whole model's params and model_state; a
  collection the encoder does not use (a ViT has no batch_stats) is left out."""
  encoder_params = _subtree(params, path)
  if encoder_params is None:
    from ssl_jax.errors import ConfigError
    raise ConfigError(f"The checkpoint has no encoder at params/{path} (metadata encoder_path).")
  state = {name: _subtree(collection, path) for name, collection in model_state.items()}
  return encoder_params, {name: tree for name, tree in state.items() if tree is not None}


def _as_float(images):
  """uint8 images (evaluation) or float views in [0, 1] (fine-tuning augmentation)."""
  return augment.to_float(images) if images.dtype == jnp.uint8 else images


def _apply(module, params, state, images, train: bool):
  x = model_input(_as_float(images))
  variables = {"params": params, **state}
  if train and state:
    return module.apply(variables, x, train=True, mutable=list(state))
  return module.apply(variables, x, train=train), state


def _pixels(params, state, images, train: bool):
  del params, train
  return _as_float(images).reshape(images.shape[0], -1), state


def finetune_augment(config):
  """Crops and (if the pretraining recipe allowed them) flips; no colour changes."""
  spec, = augment.views("crop_flip", flip=config.augment.flip)
  size = config.data.image_size

  def apply(key, images_uint8):
    views, = augment.augment_batch(key, images_uint8, (spec,), size)
    return views  # float in [0, 1]; _apply accepts both

  return apply


def transfer(run, options) -> Transfer:
  config = run.config
  size = config.data.image_size
  data = images.load(config.data)
  train = Labelled(*images.load_arrays(data.probe, size, options.max_train_examples))
  test = Labelled(*images.load_arrays(data.eval, size, options.max_test_examples))
  module = encoders.image_encoder(config.model)
  apply = functools.partial(_apply, module)
  params, state = encoder_variables(run.params, run.model_state,
                                    run.metadata.get("encoder_path", "encoder"))
  aug = finetune_augment(config)

  def random_init(key):
    p, s = split_variables(module.init(key, jnp.zeros((1, size, size, 3)), train=False))
    return Encoder(apply, p, s, aug)

  raw = Encoder(_pixels, {}, {}, aug)
  return Transfer(Encoder(apply, params, state, aug), train, test, data.num_classes,
                  random_init=random_init, raw=raw, raw_name="raw_pixels")
