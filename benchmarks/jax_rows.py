"""ssl_jax's side of the benchmarks: each function builds one row's work, compiled and warm.

A row object has `run(n)` (n steps, blocking at the end only), `units_per_step`, `unit`
("tokens" / "images" / "flops"), `flops_per_step`, and `extra` (more JSON fields).
These use only ssl_jax modules that need jax/flax/optax, so device_check.py shares them.
"""
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.common import SIMCLR_TEMPERATURE
from ssl_jax.models.gpt import GPT
from ssl_jax.models.layers import resolve_backends
from ssl_jax.objectives import next_token
from ssl_jax.optim import weight_decay_mask
from ssl_jax.step import TrainState, make_train_step
from ssl_jax.tasks import Task


def _xla_mb(compiled) -> float:
  """Device memory XLA plans for one call: arguments + outputs (not donated) + temporaries."""
  try:
    m = compiled.memory_analysis()
    return (m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
            + m.temp_size_in_bytes) / 2 ** 20
  except Exception:  # not every backend reports it
    return float("nan")


class _StepRow:
  """A jitted, donated train step run on one fixed batch (the benchmarks time the step)."""

  def __init__(self, step_fn, state, batch, units_per_step, unit, flops_per_step):
    jitted = jax.jit(step_fn, donate_argnums=0)
    compiled = jitted.lower(state, batch).compile()
    self.extra = {"xla_mem_mb": round(_xla_mb(compiled), 1)}
    self._step, self._state, self._batch = compiled, state, batch
    self.units_per_step, self.unit, self.flops_per_step = units_per_step, unit, flops_per_step
    self.last_metrics = None
    self.run(2)  # warm: first calls allocate

  def run(self, n: int):
    for _ in range(n):
      # Metrics stay on device: nothing here waits for the host, as in train.py.
      self._state, self.last_metrics = self._step(self._state, self._batch)
    jax.block_until_ready(self._state)


def _state(params, tx, model_state=None):
  return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), model_state or {},
                    jax.random.key_data(jax.random.key(1)))


def gpt_adamw():
  """The optimizer of configs/gpt_tiny.py (clipping, AdamW, decay on matrices only)."""
  return optax.chain(optax.clip_by_global_norm(1.0),
                     optax.adamw(1e-3, b1=0.9, b2=0.95, weight_decay=0.1,
                                 mask=weight_decay_mask))


def gpt_row(layers, heads, width, seq, batch, vocab, flops_per_token, dtype="float32",
            remat=False, attention="auto", matmul="auto"):
  """attention, matmul: as model.attention and model.matmul ("auto": the platform's choice)."""
  backends = resolve_backends({"attention": attention, "matmul": matmul})
  model = GPT(vocab_size=vocab, max_len=seq, num_layers=layers, num_heads=heads, width=width,
              dtype=jnp.dtype(dtype), remat=remat, **backends)
  bytes_V = jnp.ones((vocab,), jnp.float32)

  def apply_fn(params, tokens, rng, train):
    return model.apply({"params": params}, tokens, train=train)

  def loss_fn(params, model_state, batch_, rng):
    loss, metrics = next_token.loss_fn(apply_fn, bytes_V, params, batch_, rng)
    return loss, (metrics, model_state)

  task = Task(init=None, loss_fn=loss_fn, eval_sums=None, finalize_eval=None,
              train_data=None, eval_data=[], unit=("tokens", batch * seq))
  tx = gpt_adamw()
  params = jax.jit(lambda k: model.init(k, jnp.zeros((1, seq), jnp.int32))["params"])(
      jax.random.key(0))
  tokens = np.random.RandomState(0).randint(0, vocab, (batch, seq + 1)).astype(np.int32)
  row = _StepRow(make_train_step(task, tx), _state(params, tx), {"tokens": jnp.asarray(tokens)},
                 batch * seq, "tokens", flops_per_token * batch * seq)
  row.extra["params_m"] = round(sum(x.size for x in jax.tree.leaves(params)) / 1e6, 2)
  return row


def simclr_row(batch, image_size=32, width=64, dtype="float32"):
  """SimCLR ResNet-18 (CIFAR stem) step: two augmented views drawn on device, NT-Xent, LARS.

  The loss is the SimCLR task's own (tasks/vision.py), at the CIFAR recipe's temperature.
  """
  from ssl_jax.data import augment
  from ssl_jax.models.heads import EncoderWithHead, ProjectionHead
  from ssl_jax.models.resnet import ResNet
  from ssl_jax.tasks.vision import simclr_loss
  encoder = ResNet(depth=18, stem="cifar", width=width, dtype=jnp.dtype(dtype))
  model = EncoderWithHead(encoder, ProjectionHead(encoder.features_dim, 128, 2))
  specs = augment.views("simclr", strength=0.5, blur=False)
  S = image_size

  loss_fn, _ = simclr_loss(model, specs, S, SIMCLR_TEMPERATURE)
  task = Task(init=None, loss_fn=loss_fn, eval_sums=None, finalize_eval=None,
              train_data=None, eval_data=[], unit=("images", batch))
  tx = optax.lars(0.3, weight_decay=1e-6, momentum=0.9)
  variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, S, S, 3)), train=False))(
      jax.random.key(0))
  variables = dict(variables)
  params = variables.pop("params")
  images = np.random.RandomState(0).randint(0, 256, (batch, S, S, 3)).astype(np.uint8)
  flops = resnet18_train_flops(image_size, width) * 2 * batch  # two views per image
  return _StepRow(make_train_step(task, tx), _state(params, tx, variables),
                  {"image": jnp.asarray(images)}, batch, "images", flops)


def resnet18_train_flops(image_size: int, width: int) -> float:
  """Conv + dense multiply-adds x 2 x 3 (forward + backward) of a CIFAR-stem ResNet-18 view."""
  macs, size, channels = 0, image_size, 3
  macs += size * size * 9 * channels * width  # stem 3x3
  channels = width
  for stage, stride in enumerate((1, 2, 2, 2)):
    out = width * 2 ** stage
    for block in range(2):
      s = stride if block == 0 else 1
      size_out = size // s
      macs += size_out ** 2 * 9 * channels * out + size_out ** 2 * 9 * out * out
      if s != 1 or channels != out:
        macs += size_out ** 2 * channels * out  # 1x1 projection shortcut
      channels, size = out, size_out
  return 3 * 2 * macs


def matmul_row(n=2048, dtype="float32"):
  """An n x n x n matrix product: the machine's practical matmul ceiling through XLA."""
  dt = jnp.dtype(dtype)
  a = jax.random.normal(jax.random.key(0), (n, n), dt)
  b = jax.random.normal(jax.random.key(1), (n, n), dt)
  f = jax.jit(lambda a, b: a @ b).lower(a, b).compile()
  row = types.SimpleNamespace(units_per_step=2 * n ** 3, unit="flops", flops_per_step=2 * n ** 3,
                              extra={})

  def run(k):
    out = None
    for _ in range(k):
      out = f(a, b)
    jax.block_until_ready(out)

  row.run = run
  run(2)
  return row
