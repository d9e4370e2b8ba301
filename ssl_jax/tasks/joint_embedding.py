"""Two views, one network, no momentum target: Barlow Twins, VICReg and SimSiam.

params       {"online": {"encoder", "head"}, "predictor"?}   (SimSiam alone has a predictor)
model_state  {"batch_stats": {"online", "predictor"?}}
Barlow Twins and VICReg avoid collapse with statistics of the global batch (a correlation
matrix; variances and covariances); SimSiam with a predictor and a stop-gradient.
"""
import jax
import jax.numpy as jnp

from ssl_jax.models.heads import EncoderWithHead, ProjectionHead
from ssl_jax.models.inputs import apply_model, split_variables
from ssl_jax.objectives import barlow_twins, simsiam, vicreg
from ssl_jax.tasks import Task
from ssl_jax.tasks.vision import (image_metadata, image_setup, two_view_fns, unpair,
                                  validate)  # noqa: F401 (tasks.validate)


def barlow_twins_task(config, axis_name: str | None = None) -> Task:
  weight = config.barlow_twins.off_diagonal_weight

  def loss(z1, z2, p1, p2):
    del p1, p2
    value = barlow_twins.barlow_twins_loss(z1, z2, weight, axis_name)
    return value, {"loss": value}
  return _joint_embedding_task(config, axis_name, loss)


def vicreg_task(config, axis_name: str | None = None) -> Task:
  v = config.vicreg

  def loss(z1, z2, p1, p2):
    del p1, p2
    value, terms = vicreg.vicreg_loss(z1, z2, v.invariance_weight, v.variance_weight,
                                      v.covariance_weight, axis_name)
    return value, {"loss": value, **terms}
  return _joint_embedding_task(config, axis_name, loss)


def simsiam_task(config, axis_name: str | None = None) -> Task:
  def loss(z1, z2, p1, p2):
    value = simsiam.simsiam_loss(p1, p2, z1, z2)
    return value, {"loss": value}
  # SimSiam: a batch norm closes the projector; the predictor is a bottleneck MLP.
  return _joint_embedding_task(config, axis_name, loss, projector_out_norm=True,
                               predictor_hidden=config.simsiam.predictor_hidden_dim)


def _joint_embedding_task(config, axis_name, loss, projector_out_norm: bool = False,
                          predictor_hidden: int = 0) -> Task:
  """loss(z1, z2, p1, p2) -> (loss, metrics): projections z and predictions p (None without
  a predictor) of the two views."""
  setup = image_setup(config, axis_name)
  h, S = config.head, setup.image_size
  hidden = h.hidden_dim or setup.encoder.features_dim
  online = EncoderWithHead(setup.encoder, ProjectionHead(hidden, h.out_dim, h.num_layers,
                                                         bn_axis_name=axis_name,
                                                         out_norm=projector_out_norm))
  modules = {"online": online}
  if predictor_hidden:
    modules["predictor"] = ProjectionHead(predictor_hidden, h.out_dim, 2, bn_axis_name=axis_name)

  def init(key):
    keys = dict(zip(modules, jax.random.split(key, len(modules))))
    inputs = {"online": jnp.zeros((2, S, S, 3)), "predictor": jnp.zeros((2, h.out_dim))}
    params, stats = {}, {}
    for name, module in modules.items():
      params[name], state = split_variables(module.init(keys[name], inputs[name], train=False))
      stats[name] = state["batch_stats"]
    return params, {"batch_stats": stats}

  def forward(params, model_state, x, train):
    stats = model_state["batch_stats"]
    (_, z), online_state = apply_model(online, params["online"],
                                       {"batch_stats": stats["online"]}, x, train)
    new_stats = {"online": online_state["batch_stats"]}
    p1 = p2 = None
    if "predictor" in modules:
      p, pred_state = apply_model(modules["predictor"], params["predictor"],
                                  {"batch_stats": stats["predictor"]}, z, train)
      new_stats["predictor"] = pred_state["batch_stats"]
      p1, p2 = unpair(p)
    return loss(*unpair(z), p1, p2), {"batch_stats": new_stats}

  loss_fn, eval_sums, finalize_eval = two_view_fns(forward, setup.views, S, axis_name)

  return Task(init=init, loss_fn=loss_fn, eval_sums=eval_sums, finalize_eval=finalize_eval,
              train_data=setup.train_data, eval_data=setup.eval_data,
              unit=("images", config.batch_size),
              metadata=image_metadata(setup, encoder_path="online/encoder"))
