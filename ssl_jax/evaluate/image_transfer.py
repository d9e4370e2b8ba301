"""Transfer source for image encoders (SimCLR, BYOL): the encoder out of a checkpoint,
plus labelled probe and test splits: those of the dataset it was trained on, or of another
(--dataset images:DIR or tfds:NAME), resized to the pretraining image size.

The checkpoint's metadata["encoder_path"] ("a/b") says where the encoder's variables sit
in params and in each model_state collection; a new image objective only has to set it.
"""
import functools
import os

import jax.numpy as jnp
import ml_collections

from ssl_jax.data import augment, images, pipeline
from ssl_jax.errors import DataError
from ssl_jax.evaluate import datasets
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


def labelled_splits(config, options):
  """(probe source, test source, number of classes) of the data options.dataset names."""
  spec = datasets.for_modality(options.dataset, "image")
  if not spec.kind:
    data = images.load(config.data)
    return data.probe, data.eval, data.num_classes
  cfg = ml_collections.ConfigDict({"name": spec.argument, "source": "",
                                   "data_dir": config.data.get("data_dir", "")})
  if spec.kind == "images":
    cfg.name, cfg.source = images.IMAGE_FOLDER, os.path.abspath(os.path.expanduser(spec.argument))
    if not os.path.isdir(cfg.source):
      raise DataError(f"--dataset images:{spec.argument}: no such folder. It needs one "
                      "subfolder of images per class (DIR/CLASS/*.png, or DIR/train/CLASS and "
                      "DIR/test/CLASS).")
  return pipeline.process_0_first(lambda: _open_pair(cfg), "eval_images")


def _open_pair(cfg):
  try:
    train, num_classes = images.open_split(cfg, "train")
  except DataError as e:
    if cfg.name == images.IMAGE_FOLDER:
      raise
    raise DataError(f"{e}\n(python -m ssl_jax.evaluate reads TFDS datasets from --data_dir.)"
                    ) from e
  try:
    test, _ = images.open_split(cfg, "test")
  except DataError as no_test:
    try:
      test, _ = images.open_split(cfg, "validation")
    except DataError:
      raise no_test from None
  return train, test, num_classes


def transfer(run, options) -> Transfer:
  config = run.config
  size = int(run.metadata.get("image_size", config.data.image_size))
  probe, held_out, num_classes = labelled_splits(config, options)
  train = Labelled(*images.load_arrays(probe, size, options.max_train_examples))
  test = Labelled(*images.load_arrays(held_out, size, options.max_test_examples))
  module = encoders.image_encoder(config.model)
  apply = functools.partial(_apply, module)
  params, state = encoder_variables(run.params, run.model_state,
                                    run.metadata.get("encoder_path", "encoder"))
  aug = finetune_augment(config)

  def random_init(key):
    p, s = split_variables(module.init(key, jnp.zeros((1, size, size, 3)), train=False))
    return Encoder(apply, p, s, aug)

  raw = Encoder(_pixels, {}, {}, aug)
  return Transfer(Encoder(apply, params, state, aug), train, test, num_classes,
                  random_init=random_init, raw=raw, raw_name="raw_pixels")
