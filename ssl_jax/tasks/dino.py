"""DINO: a student matches its momentum teacher across multi-crop views.

params       {"student": {"encoder", "head"}}                    (trained by the optimizer)
model_state  {"batch_stats": {"student"}?,                       (a ResNet's; a ViT has none)
              "target": {"params", "batch_stats"?},              (the teacher: an EMA)
              "center": [K], "teacher_temp": []}
The teacher sees the two global crops, the student every crop. The centre moves by EMA in
the loss (it needs the step's teacher outputs); the teacher follows the student after each
update by the EMA rule shared with BYOL and MoCo v3 (objectives/teacher.py), and the
teacher temperature for the next step is set there too.
"""
import jax
import jax.numpy as jnp

from ssl_jax.data import augment
from ssl_jax.errors import ConfigError
from ssl_jax.models.heads import DINOHead, EncoderWithHead
from ssl_jax.models.inputs import apply_model, model_input, split_variables
from ssl_jax.objectives import dino, teacher
from ssl_jax.tasks import Task
from ssl_jax.tasks.vision import (EVAL_KEY_SEED, image_metadata, image_setup, mean_metrics_eval,
                                  multi_crop)
from ssl_jax.tasks import vision


def validate(config):
  vision.validate(config)
  a, d = config.augment, config.dino
  if a.local_crops and config.model.name == "vit" and a.local_size % config.model.patch_size:
    raise ConfigError(f"augment.local_size={a.local_size} is not a multiple of "
                      f"model.patch_size={config.model.patch_size}.")
  if a.local_crops and not 0 < a.local_crop_min_scale < a.crop_min_scale:
    raise ConfigError(f"augment.local_crop_min_scale={a.local_crop_min_scale} must lie in (0, "
                      f"augment.crop_min_scale={a.crop_min_scale}): local crops are the small ones.")
  if d.teacher_temp <= 0 or d.warmup_teacher_temp <= 0 or d.student_temp <= 0:
    raise ConfigError("dino.teacher_temp, dino.warmup_teacher_temp and dino.student_temp must be "
                      "positive.")


def _collections(batch_stats):
  return {"batch_stats": batch_stats} if batch_stats else {}


def dino_task(config, axis_name: str | None = None) -> Task:
  validate(config)
  a, d, h = config.augment, config.dino, config.head
  S = config.data.image_size
  setup = image_setup(config, axis_name,
                      pos_grid=S // config.model.patch_size if config.model.name == "vit" else 0)
  hidden = h.hidden_dim or setup.encoder.features_dim
  student = EncoderWithHead(setup.encoder,
                            DINOHead(hidden, h.out_dim, d.num_prototypes, h.num_layers))
  local_spec = augment.local_view(setup.views[0], a.local_crop_min_scale)

  def temperature(step):
    return dino.teacher_temperature(step, d.warmup_teacher_temp, d.teacher_temp,
                                    d.warmup_teacher_temp_steps)

  def init(key):
    params, state = split_variables(student.init(key, jnp.zeros((2, S, S, 3)), train=False))
    bs = state.get("batch_stats", {})
    model_state = {"target": {"params": params, "batch_stats": bs},
                   "center": jnp.zeros((d.num_prototypes,), jnp.float32),
                   "teacher_temp": temperature(0)}
    if bs:
      model_state["batch_stats"] = {"student": bs}
    return {"student": params}, model_state

  def forward(params, model_state, key, images, train):
    """(loss, metrics, new model_state), the centre moved when training."""
    globals_, locals_ = multi_crop(key, images, setup.views, local_spec,
                                   a.local_crops, S, a.local_size, axis_name)
    B = images.shape[0]
    bs = model_state.get("batch_stats", {}).get("student", {})
    (_, s_global), state = apply_model(student, params["student"], _collections(bs),
                                       model_input(globals_), train)
    student_views = [s_global.reshape(B, -1, s_global.shape[-1])]
    if locals_ is not None:
      (_, s_local), state = apply_model(student, params["student"], state,
                                        model_input(locals_), train)
      student_views.append(s_local.reshape(B, -1, s_local.shape[-1]))
    target = model_state["target"]
    (_, t_global), target_state = apply_model(student, target["params"],
                                              _collections(target["batch_stats"]),
                                              model_input(globals_), train)
    teacher_BxGxK = t_global.reshape(B, -1, t_global.shape[-1])
    loss = dino.dino_loss(jnp.concatenate(student_views, 1), teacher_BxGxK,
                          model_state["center"], d.student_temp, model_state["teacher_temp"])
    new_state = dict(model_state)
    if train:
      new_state["center"] = dino.update_center(model_state["center"], teacher_BxGxK,
                                               d.center_momentum, axis_name)
      new_state["target"] = {**target,
                             "batch_stats": target_state.get("batch_stats", {})}
      if bs:
        new_state["batch_stats"] = {"student": state["batch_stats"]}
    # How peaked the teacher is: its mean top probability (collapse to one prototype -> 1).
    probs = dino.teacher_probs(teacher_BxGxK, model_state["center"], model_state["teacher_temp"])
    metrics = {"loss": loss, "teacher_top_prob": global_mean(jnp.mean(jnp.max(probs, -1)))}
    return loss, metrics, new_state

  def global_mean(x):
    return x if axis_name is None else jax.lax.pmean(x, axis_name)

  def loss_fn(params, model_state, batch, rng):
    loss, metrics, model_state = forward(params, model_state, rng, batch["image"], train=True)
    return loss, (metrics, model_state)

  def after_update(params, model_state, step):
    model_state = teacher.follow(model_state, params["student"], step, config.total_steps,
                                 d.base_momentum)
    return {**model_state, "teacher_temp": temperature(step + 1)}

  def eval_metrics(params, model_state, batch):
    return forward(params, model_state, jax.random.key(EVAL_KEY_SEED), batch["image"],
                   train=False)[1]

  eval_sums, finalize_eval = mean_metrics_eval(eval_metrics)

  return Task(init=init, loss_fn=loss_fn, eval_sums=eval_sums, finalize_eval=finalize_eval,
              train_data=setup.train_data, eval_data=setup.eval_data,
              unit=("images", config.batch_size), after_update=after_update,
              metadata=image_metadata(setup, encoder_path="student/encoder"))
