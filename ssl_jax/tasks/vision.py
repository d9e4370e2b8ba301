"""Image pretraining tasks. SimCLR here; the other image objectives reuse `image_setup`,
`two_views` and `multi_crop`.

Batches hold uint8 images; the views are drawn on device inside the loss, from the step's
PRNG key, so the data pipeline stays free of augmentation and resumes exactly.
"""
import dataclasses

import jax
import jax.numpy as jnp

from ssl_jax.data import augment
from ssl_jax.errors import ConfigError
from ssl_jax.models import encoders
from ssl_jax.models.heads import EncoderWithHead, ProjectionHead
from ssl_jax.models.inputs import apply_model, model_input, split_variables
from ssl_jax.objectives import simclr
from ssl_jax.tasks import Task

EVAL_KEY_SEED = 0  # evaluation views are fixed, so evaluations compare across steps


@dataclasses.dataclass
class ImageSetup:
  """What every image pretraining task shares: data, encoder, augmentation."""
  data: object  # images.ImageData
  image_size: int
  encoder: object  # a Flax module: images in [-1, 1] -> features
  views: tuple  # augment.ViewSpec per view
  train_data: object
  eval_data: list


def view_specs(config):
  a = config.augment
  return augment.views(a.preset, strength=a.strength, crop_min_scale=a.crop_min_scale,
                       blur=a.blur, flip=a.flip)


def validate(config):
  """What an image config must satisfy before any data is read: the image size suits the
  encoder, the encoder can be built, and the preset gives the two views both methods need."""
  encoders.check_image_size(config.model, config.data.image_size)
  encoders.check_encoder(config.model)  # ResNet depth, ViT heads and pooling
  views = view_specs(config)
  if len(views) != 2:
    raise ConfigError(f"{config.objective} needs two views; augment.preset="
                      f"{config.augment.preset!r} gives {len(views)}.")


def image_setup(config, axis_name: str | None, pos_grid: int = 0) -> ImageSetup:
  """axis_name: the device axis batch norm averages over (tasks.make_task); pos_grid: a
  ViT's position grid when it also sees other image sizes (DINO's small crops)."""
  # Data modules (TFDS, grain) load here only, so the loss pieces above and below import
  # with jax/flax/optax alone (device checks, benchmarks).
  from ssl_jax.data import images, pipeline
  d = config.data
  if config.batch_size < 2:
    raise ConfigError("batch_size must be at least 2: contrastive losses need negatives.")
  encoders.check_image_size(config.model, d.image_size)
  encoder = encoders.image_encoder(config.model, bn_axis_name=axis_name, pos_grid=pos_grid)
  views = view_specs(config)
  data = images.load(d)  # DataError with instructions if a dataset is missing
  count, load_rows = images.image_loader(data.train, d.image_size)
  if count < config.batch_size:
    raise ConfigError(f"The {d.train_split!r} split of {d.name} has {count} images, fewer than "
                      f"batch_size={config.batch_size}.")
  train_data = pipeline.global_batches(count, config.batch_size, load_rows, seed=config.seed)
  eval_count, eval_rows = images.image_loader(data.eval, d.image_size)
  n = jax.device_count()
  eval_batch = min(config.batch_size, eval_count - eval_count % n)
  if eval_batch < max(n, 2):
    raise ConfigError(f"The {d.eval_split!r} split of {d.name} has {eval_count} images; too few "
                      f"for {n} devices.")
  eval_ds = pipeline.global_batches(eval_count, eval_batch, eval_rows, seed=0, shuffle=False,
                                    repeat=False)
  eval_data = [eval_ds[i] for i in range(min(len(eval_ds), config.eval_steps))]
  return ImageSetup(data, d.image_size, encoder, views, train_data, eval_data)


def two_views(key, images_BxHxWxC, specs, image_size, axis_name=None):
  """Both views in one batch [2B, ...], interleaved (example b -> rows 2b, 2b + 1).

  Interleaving keeps each device's views on that device when the batch is sharded (a
  concatenation would move half the rows), and batch norm sees all 2B views at once.
  """
  v1, v2 = augment.augment_batch(key, images_BxHxWxC, specs, image_size, axis_name)
  B = v1.shape[0]
  return jnp.stack([v1, v2], 1).reshape(2 * B, *v1.shape[1:])


def multi_crop(key, images_BxHxWxC, global_specs, local_spec, num_local: int, image_size: int,
               local_size: int, axis_name=None):
  """(global views [G*B, S, S, C], local views [L*B, s, s, C] or None), each interleaved
  per example (example b -> rows b*G ... b*G + G - 1). Every view of every example has its
  own key, drawn from the global batch as in `two_views`."""
  key_global, key_local = jax.random.split(key)
  views = augment.augment_batch(key_global, images_BxHxWxC, global_specs, image_size, axis_name)
  B = views[0].shape[0]
  globals_ = jnp.stack(views, 1).reshape(B * len(views), *views[0].shape[1:])
  if not num_local:
    return globals_, None
  views = augment.augment_batch(key_local, images_BxHxWxC, (local_spec,) * num_local,
                                local_size, axis_name)
  return globals_, jnp.stack(views, 1).reshape(B * num_local, *views[0].shape[1:])


def mean_metrics_eval(metrics_fn):
  """(eval_sums, finalize_eval) for evaluation metrics that are means over a batch:
  metrics_fn(params, model_state, batch) -> {name: mean}. Each batch's means are weighted by
  its rows (this device's under pmap, whose wrapper sums the devices)."""
  def eval_sums(params, model_state, batch):
    metrics = metrics_fn(params, model_state, batch)
    n = jnp.float32(batch["image"].shape[0])
    return {**{k: v * n for k, v in metrics.items()}, "count": n}

  def finalize_eval(sums):
    return {k: v / sums["count"] for k, v in sums.items() if k != "count"}

  return eval_sums, finalize_eval


def two_view_fns(forward, views, image_size: int, axis_name=None):
  """(loss_fn, eval_sums, finalize_eval) of a two-view method given its
  forward(params, model_state, views_2BxSxSxC, train) -> ((loss, metrics), model_state).
  Evaluation draws its views from a fixed key."""
  def loss_fn(params, model_state, batch, rng):
    x = model_input(two_views(rng, batch["image"], views, image_size, axis_name))
    (value, metrics), model_state = forward(params, model_state, x, train=True)
    return value, (metrics, model_state)

  def eval_metrics(params, model_state, batch):
    key = jax.random.key(EVAL_KEY_SEED)
    x = model_input(two_views(key, batch["image"], views, image_size, axis_name))
    return forward(params, model_state, x, train=False)[0][1]

  return (loss_fn, *mean_metrics_eval(eval_metrics))


def unpair(z_2BxD):
  z_Bx2xD = z_2BxD.reshape(-1, 2, z_2BxD.shape[-1])
  return z_Bx2xD[:, 0], z_Bx2xD[:, 1]


def simclr_model(config, encoder, axis_name: str | None):
  h = config.head
  return EncoderWithHead(encoder, ProjectionHead(
      h.hidden_dim or encoder.features_dim, h.out_dim, h.num_layers, bn_axis_name=axis_name))


def simclr_loss(model, views, image_size: int, temperature: float, axis_name=None):
  """(loss_fn, eval_sums) of SimCLR for a model returning (features, projections)."""
  S, T = image_size, temperature

  def loss_fn(params, model_state, batch, rng):
    x = model_input(two_views(rng, batch["image"], views, S, axis_name))
    (_, z), model_state = apply_model(model, params, model_state, x, train=True)
    loss, metrics = simclr.nt_xent(*unpair(z), T, axis_name=axis_name)
    return loss, (metrics, model_state)

  def eval_sums(params, model_state, batch):
    key = jax.random.key(EVAL_KEY_SEED)
    x = model_input(two_views(key, batch["image"], views, S, axis_name))
    (_, z), _ = apply_model(model, params, model_state, x, train=False)
    loss_2B, correct_2B = simclr.nt_xent_terms(*unpair(z), T, axis_name=axis_name)
    return {"loss": jnp.sum(loss_2B), "correct": jnp.sum(correct_2B),
            "count": jnp.float32(loss_2B.shape[0])}

  return loss_fn, eval_sums


def simclr_task(config, axis_name: str | None = None) -> Task:
  setup = image_setup(config, axis_name)
  if len(setup.views) != 2:
    raise ConfigError(f"SimCLR needs two views; augment.preset={config.augment.preset!r} "
                      f"gives {len(setup.views)}.")
  if config.simclr.temperature <= 0:
    raise ConfigError(f"simclr.temperature must be positive, got {config.simclr.temperature}.")
  model = simclr_model(config, setup.encoder, axis_name)
  S = setup.image_size
  loss_fn, eval_sums = simclr_loss(model, setup.views, S, config.simclr.temperature, axis_name)

  def init(key):
    return split_variables(model.init(key, jnp.zeros((1, S, S, 3)), train=False))

  def finalize_eval(eval_sums):
    return {"loss": eval_sums["loss"] / eval_sums["count"],
            "contrastive_accuracy": eval_sums["correct"] / eval_sums["count"]}

  return Task(init=init, loss_fn=loss_fn, eval_sums=eval_sums, finalize_eval=finalize_eval,
              train_data=setup.train_data, eval_data=setup.eval_data,
              unit=("images", config.batch_size),
              metadata=image_metadata(setup, encoder_path="encoder"))


def image_metadata(setup: ImageSetup, encoder_path: str) -> dict:
  """What evaluation needs beyond the config: where the encoder sits in params/model_state."""
  return {"dataset": setup.data.name, "dataset_fingerprint": setup.data.fingerprint,
          "num_classes": setup.data.num_classes,
          "image_size": setup.image_size, "encoder_path": encoder_path}
