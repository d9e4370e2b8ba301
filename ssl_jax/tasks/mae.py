"""MAE: hide most patches, encode the visible ones, reconstruct the hidden pixels.

params       {"encoder": ViT, "decoder": MAEDecoder}    (the decoder is dropped for transfer)
model_state  {}
Each example's mask is drawn from its own key of the global batch, like its view, so the
numbers do not depend on the device count or the parallel wrapper.
"""
import jax
import jax.numpy as jnp

from ssl_jax.data import augment
from ssl_jax.errors import ConfigError
from ssl_jax.models import encoders, layers
from ssl_jax.models.inputs import model_input
from ssl_jax.models.mae import MAE, MAEDecoder
from ssl_jax.objectives import mae
from ssl_jax.tasks import Task
from ssl_jax.tasks.vision import (EVAL_KEY_SEED, image_metadata, image_setup, mean_metrics_eval,
                                  view_specs)


def validate(config):
  if config.model.name != "vit":
    raise ConfigError(f"MAE masks patches, so it needs model.name='vit'; got "
                      f"{config.model.name!r}.")
  encoders.check_image_size(config.model, config.data.image_size)
  encoders.check_encoder(config.model)
  if not 0.0 < config.mae.mask_ratio < 1.0:
    raise ConfigError(f"mae.mask_ratio must be in (0, 1), got {config.mae.mask_ratio}.")
  if len(view_specs(config)) != 1:
    raise ConfigError(f"MAE takes one view; augment.preset={config.augment.preset!r} gives "
                      f"{len(view_specs(config))} (use 'mae').")
  m = config.mae
  if m.decoder_width % m.decoder_heads:
    raise ConfigError(f"mae.decoder_width={m.decoder_width} is not divisible by "
                      f"mae.decoder_heads={m.decoder_heads}.")


def mae_task(config, axis_name: str | None = None) -> Task:
  validate(config)
  setup = image_setup(config, axis_name)
  S, p, m = setup.image_size, config.model.patch_size, config.mae
  num_patches = (S // p) ** 2
  decoder = MAEDecoder(num_patches, p * p * 3, m.decoder_width, m.decoder_depth,
                       m.decoder_heads, dtype=jnp.dtype(config.model.dtype),
                       matmul=layers.resolve_backends(config.model)["matmul"])
  model = MAE(setup.encoder, decoder)
  def init(key):
    keep = jnp.arange(mae.keep_count(num_patches, m.mask_ratio))[None]
    return model.init(key, jnp.zeros((1, S, S, 3)), keep, train=False)["params"], {}

  def forward(params, key, images):
    """(loss, metrics) on one view of the batch, each example with its own mask."""
    key_view, key_mask = jax.random.split(key)
    x = model_input(augment.augment_batch(key_view, images, setup.views, S, axis_name)[0])
    keys_B = augment.example_keys(key_mask, 1, x.shape[0], axis_name)[0]
    keep_BxK, mask_BxN = mae.random_keep(keys_B, num_patches, m.mask_ratio)
    pred_BxNxP = model.apply({"params": params}, x, keep_BxK)
    target_BxNxP = mae.pixel_targets(mae.patchify(x, p), m.norm_pix)
    loss = mae.mae_loss(pred_BxNxP, target_BxNxP, mask_BxN)
    return loss, {"loss": loss}

  def loss_fn(params, model_state, batch, rng):
    loss, metrics = forward(params, rng, batch["image"])
    if axis_name is not None:
      metrics = jax.lax.pmean(metrics, axis_name)
    return loss, (metrics, model_state)

  eval_sums, finalize_eval = mean_metrics_eval(
      lambda params, model_state, batch: forward(params, jax.random.key(EVAL_KEY_SEED),
                                                 batch["image"])[1])

  return Task(init=init, loss_fn=loss_fn, eval_sums=eval_sums, finalize_eval=finalize_eval,
              train_data=setup.train_data, eval_data=setup.eval_data,
              unit=("images", config.batch_size),
              metadata=image_metadata(setup, encoder_path="encoder"))
