"""The momentum teacher shared by BYOL, MoCo v3 and DINO: one EMA rule, one schedule.

The teacher (BYOL's "target", MoCo's momentum encoder, DINO's teacher) is never trained by
the optimizer: after every update it moves towards the online/student weights by
    teacher <- m * teacher + (1 - m) * online,
with m raised from `base` to 1 by a half cosine over the run, as all three papers do.
"""
import jax
import jax.numpy as jnp


def momentum(step, total_steps: int, base: float):
  """The EMA momentum at `step`: `base` at step 0, 1 at `total_steps`, a half cosine between."""
  progress = jnp.clip(step / max(total_steps, 1), 0.0, 1.0)
  return 1.0 - (1.0 - base) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0


def ema(teacher, online, m):
  """teacher <- m * teacher + (1 - m) * online, leaf by leaf."""
  return jax.tree.map(lambda t, o: m * t + (1.0 - m) * o, teacher, online)


def follow(model_state, online_params, step, total_steps: int, base: float):
  """model_state with model_state["target"]["params"] moved one EMA step towards
  `online_params` (the layout every teacher task uses; its batch statistics are its own)."""
  target = model_state["target"]
  m = momentum(step, total_steps, base)
  return {**model_state, "target": {**target, "params": ema(target["params"], online_params, m)}}
