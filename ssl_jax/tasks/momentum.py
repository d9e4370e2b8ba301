"""An online network with a predictor against a momentum target: BYOL and MoCo v3.

params       {"online": {"encoder", "head"}, "predictor"}       (trained by the optimizer)
model_state  {"batch_stats": {"online", "predictor"},
              "target": {"params", "batch_stats"}}               (never sees a gradient)
After every update the target follows the online network by the shared EMA rule and
momentum schedule (objectives/teacher.py). The two methods differ only in the loss:
BYOL regresses the target's projection (no negatives), MoCo v3 scores it by InfoNCE against
the global batch.
"""
import jax
import jax.numpy as jnp

from ssl_jax.errors import ConfigError
from ssl_jax.models.heads import EncoderWithHead, ProjectionHead
from ssl_jax.models.inputs import apply_model, split_variables
from ssl_jax.objectives import byol, mocov3, teacher
from ssl_jax.tasks import Task
from ssl_jax.tasks.vision import (image_metadata, image_setup, two_view_fns, unpair,
                                  validate)  # noqa: F401 (tasks.validate)


def byol_task(config, axis_name: str | None = None) -> Task:
  def loss(p1, p2, t1, t2):
    value = byol.byol_loss(p1, p2, t1, t2)
    return value, {"loss": value}
  return _online_target_task(config, axis_name, loss, config.byol.base_decay,
                             projector_out_norm=False, predictor_hidden=0)


def mocov3_task(config, axis_name: str | None = None) -> Task:
  m = config.mocov3
  if m.temperature <= 0:
    raise ConfigError(f"mocov3.temperature must be positive, got {m.temperature}.")

  def loss(q1, q2, k1, k2):
    value, accuracy = mocov3.mocov3_loss(q1, q2, k1, k2, m.temperature, axis_name)
    return value, {"loss": value, "contrastive_accuracy": accuracy}
  # MoCo v3: a batch norm closes the projector, not the predictor.
  return _online_target_task(config, axis_name, loss, m.base_momentum,
                             projector_out_norm=True, predictor_hidden=m.predictor_hidden_dim)


def _online_target_task(config, axis_name, loss, base_momentum: float, projector_out_norm: bool,
                        predictor_hidden: int) -> Task:
  """loss(pred1, pred2, target1, target2) -> (loss, metrics); view i's prediction is scored
  against the other view's target."""
  setup = image_setup(config, axis_name)
  if not 0.0 <= base_momentum < 1.0:
    raise ConfigError(f"The target's base momentum must be in [0, 1), got {base_momentum}.")
  h, S = config.head, setup.image_size
  hidden = h.hidden_dim or setup.encoder.features_dim
  online = EncoderWithHead(setup.encoder, ProjectionHead(hidden, h.out_dim, h.num_layers,
                                                         bn_axis_name=axis_name,
                                                         out_norm=projector_out_norm))
  predictor = ProjectionHead(predictor_hidden or hidden, h.out_dim, 2, bn_axis_name=axis_name)

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
    return loss(p1, p2, t1, t2), new_state

  def after_update(params, model_state, step):
    return teacher.follow(model_state, params["online"], step, config.total_steps, base_momentum)

  loss_fn, eval_sums, finalize_eval = two_view_fns(forward, setup.views, S, axis_name)

  return Task(init=init, loss_fn=loss_fn, eval_sums=eval_sums, finalize_eval=finalize_eval,
              train_data=setup.train_data, eval_data=setup.eval_data,
              unit=("images", config.batch_size), after_update=after_update,
              metadata=image_metadata(setup, encoder_path="online/encoder"))
