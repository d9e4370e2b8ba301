"""Optimizers: AdamW or LARS, linear warmup + cosine decay, global-norm gradient clipping."""
import jax
import optax

from ssl_jax.errors import ConfigError


def weight_decay_mask(params):
  """Weight decay (and LARS trust ratios) apply to weight matrices and kernels, not biases/norms.

  The one mask of the project: training, fine-tuning and the benchmarks all use it."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def make(cfg, total_steps: int):
  """(optax transformation, learning-rate schedule) from config.optim."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=cfg.lr, warmup_steps=min(cfg.warmup_steps, total_steps),
      decay_steps=max(total_steps, cfg.warmup_steps + 1), end_value=cfg.lr * cfg.min_lr_ratio)
  if cfg.name == "adamw":
    tx = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay,
                     mask=weight_decay_mask)
  elif cfg.name == "lars":
    tx = optax.lars(schedule, weight_decay=cfg.weight_decay, weight_decay_mask=weight_decay_mask,
                    trust_ratio_mask=weight_decay_mask, momentum=cfg.b1)
  else:
    raise ConfigError(f"optim.name must be 'adamw' or 'lars', got {cfg.name!r}.")
  if cfg.grad_clip:
    tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), tx)
  return tx, schedule
