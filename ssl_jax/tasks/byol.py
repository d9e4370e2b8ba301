"""BYOL image pretraining: online encoder + projector + predictor, target = EMA of online.

params       {"online": {"encoder", "head"}, "predictor"}       (trained by the optimizer)
model_state  {"batch_stats": {"online", "predictor"},
              "target": {"params", "batch_stats"}}               (never sees a gradient)
After every update the target moves by the EMA rule with the cosine decay schedule.
"""
import jax
import jax.numpy as jnp

from ssl_jax.errors import ConfigError
from ssl_jax.models.heads import EncoderWithHead, ProjectionHead
from ssl_jax.models.inputs import apply_model, model_input, split_variables
from ssl_jax.objectives import byol
from ssl_jax.tasks import Task
from ssl_jax.tasks.vision import (EVAL_KEY_SEED, image_metadata, image_setup, two_views, unpair,
                                  validate)  # noqa: F401 (tasks.validate)


def byol_task(config, axis_name: str | None = None) -> Task:
  setup = image_setup(config, axis_name)
  if len(setup.views) != 2:
    raise ConfigError(f"BYOL needs two views; augment.preset={config.augment.preset!r} gives "
                      f"{len(setup.views)}.")
  if not 0.0 <= config.byol.base_decay < 1.0:
    raise ConfigError(f"byol.base_decay must be in [0, 1), got {config.byol.base_decay}.")
  h, S = config.head, setup.image_size
  hidden = h.hidden_dim or setup.encoder.features_dim
  online = EncoderWithHead(setup.encoder, ProjectionHead(hidden, h.out_dim, h.num_layers,
                                                         bn_axis_name=axis_name))
  predictor = ProjectionHead(hidden, h.out_dim, 2, bn_axis_name=axis_name)

  def init(key):
    k_online, k_pred = jax.random.split(key)
    online_params, online_state = split_variables(
        online.init(k_online, jnp.zeros((2, S, S, 3)), train=False))
    pred_params, pred_state = split_variables(
        predictor.init(k_pred, jnp.zeros((2, h.out_dim)), train=False))
    params = {"online": online_params, "predictor": pred_params}
    model_state = {
        "batch_stats": {"online": online_state["batch_stats"],
                        "predictor": pred_state["batch_stats"]},
        # The target starts as an exact copy of the online network.
        "target": {"params": online_params, "batch_stats": online_state["batch_stats"]},
    }
    return params, model_state

  def forward(params, model_state, x, train):
    stats = model_state["batch_stats"]
    (_, z), online_state = apply_model(online, params["online"],
                                       {"batch_stats": stats["online"]}, x, train)
    p, pred_state = apply_model(predictor, params["predictor"],
                                {"batch_stats": stats["predictor"]}, z, train)
    target = model_state["target"]
    (_, zt), target_state = apply_model(online, target["params"],
                                        {"batch_stats": target["batch_stats"]}, x, train)
    new_state = {
        "batch_stats": {"online": online_state["batch_stats"],
                        "predictor": pred_state["batch_stats"]},
        "target": {"params": target["params"], "batch_stats": target_state["batch_stats"]},
    }
    p1, p2 = unpair(p)
    t1, t2 = unpair(zt)
    return byol.byol_loss(p1, p2, t1, t2), new_state

  def loss_fn(params, model_state, batch, rng):
    x = model_input(two_views(rng, batch["image"], setup.views, S, axis_name))
    loss, model_state = forward(params, model_state, x, train=True)
    return loss, ({"loss": loss}, model_state)

  def after_update(params, model_state, step):
    decay = byol.target_decay(step, config.total_steps, config.byol.base_decay)
    target = model_state["target"]
    return {**model_state, "target": {**target,
                                      "params": byol.ema(target["params"], params["online"], decay)}}

  def eval_sums(params, model_state, batch):
    key = jax.random.key(EVAL_KEY_SEED)
    x = model_input(two_views(key, batch["image"], setup.views, S, axis_name))
    loss, _ = forward(params, model_state, x, train=False)
    n = jnp.float32(batch["image"].shape[0])  # local rows under pmap, which sums devices
    return {"loss": loss * n, "count": n}

  return Task(init=init, loss_fn=loss_fn, eval_sums=eval_sums,
              finalize_eval=lambda s: {"loss": s["loss"] / s["count"]},
              train_data=setup.train_data, eval_data=setup.eval_data,
              unit=("images", config.batch_size), after_update=after_update,
              metadata=image_metadata(setup, encoder_path="online/encoder"))
