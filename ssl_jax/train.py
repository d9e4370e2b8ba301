"""The one generic training loop: init or restore, step, evaluate, checkpoint, preempt.

It knows a Task (tasks/__init__.py) and an optax optimizer, nothing about models or data.
"""
import json
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ssl_jax import optim, parallel, run_info
from ssl_jax.checkpoint import Checkpointer
from ssl_jax.data import pipeline
from ssl_jax.errors import EXIT_OK, EXIT_PREEMPTED, ConfigError
from ssl_jax.metrics import MetricWriter
from ssl_jax.step import TrainState, make_train_step
from ssl_jax.tasks import make_task


def validate(config):
  """Checks shared by every objective, before anything is built or written."""
  for field in ("total_steps", "batch_size", "log_every", "eval_every", "checkpoint_every"):
    if config[field] <= 0:
      raise ConfigError(f"{field} must be positive, got {config[field]}.")
  n = jax.device_count()
  if config.batch_size % n:
    raise ConfigError(f"batch_size={config.batch_size} is not divisible by the {n} devices; "
                      f"use a multiple of {n}.")
  if config.batch_size % (n * config.grad_accum):
    raise ConfigError(f"batch_size={config.batch_size} must split into grad_accum="
                      f"{config.grad_accum} microbatches over {n} devices.")


class PreemptionWatcher:
  """SIGTERM/SIGINT ask the loop to checkpoint and exit 75 after the current step."""

  def __init__(self):
    self.signal = None
    self._previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._previous[sig] = signal.signal(sig, self._handle)

  def _handle(self, signum, frame):
    if self.signal is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C stops at once
    self.signal = signum

  def restore(self):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def evaluate(task, eval_step, state, batch_sharding) -> dict:
  total = None
  for local in task.eval_data:
    sums = eval_step(state.params, state.model_state, parallel.global_batch(local, batch_sharding))
    total = sums if total is None else jax.tree.map(jnp.add, total, sums)
  return {k: float(v) for k, v in task.finalize_eval(jax.device_get(total)).items()}


def train(config, workdir: str, overrides: dict | None = None) -> int:
  """Trains config in workdir (resuming if it holds checkpoints); returns the exit code."""
  validate(config)
  mesh = parallel.make_mesh(config.mesh.fsdp)
  task = make_task(config)  # may prepare data; the workdir is still untouched
  tx, schedule = optim.make(config.optim, config.total_steps)

  def init_state(key):
    params_key, rng = jax.random.split(key)
    params, model_state = task.init(params_key)
    return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), model_state, rng)

  key = jax.random.key(config.seed)
  abstract = jax.eval_shape(init_state, key)
  shardings = parallel.state_shardings(abstract, mesh)
  batch_sharding = parallel.batch_sharding(mesh)
  is_main = jax.process_index() == 0

  os.makedirs(workdir, exist_ok=True)
  if is_main and not os.path.exists(os.path.join(workdir, "run.json")):
    run_info.write(os.path.join(workdir, "run.json"), run_info.collect(config, overrides or {}))
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints)
  data_iter = pipeline.to_iterator(task.train_data)
  latest = ckpt.latest_step()
  if latest is not None:
    state, _ = ckpt.restore(latest, parallel.with_shardings(abstract, shardings), data_iter)
    print(f"Resumed from the checkpoint at step {latest} in {workdir}.", flush=True)
  else:
    state = jax.jit(init_state, out_shardings=shardings)(key)
  start = int(state.step)
  if start >= config.total_steps:
    print(f"Already trained: step {start} >= total_steps={config.total_steps}; nothing to do.")
    ckpt.close()
    return EXIT_OK

  train_step = jax.jit(make_train_step(task, tx, config.grad_accum),
                       in_shardings=(shardings, batch_sharding),
                       out_shardings=(shardings, parallel.replicated(mesh)), donate_argnums=0)
  eval_step = jax.jit(task.eval_sums, out_shardings=parallel.replicated(mesh))
  metadata = {"config": json.loads(config.to_json_best_effort()), **task.metadata}
  writer = MetricWriter(workdir, enabled=is_main)
  watcher = PreemptionWatcher()
  unit_name, units_per_step = task.unit
  bar = tqdm(total=config.total_steps, initial=start, disable=not is_main, unit="step",
             dynamic_ncols=True, mininterval=1.0)

  pending = None  # (step, device metrics): read one step late so the host never waits on it
  window = (start, time.time())

  def log(step, metrics):
    nonlocal window
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    values["lr"] = float(schedule(step - 1))
    now = time.time()
    values[f"{unit_name}_per_s"] = (step - window[0]) * units_per_step / max(now - window[1], 1e-9)
    window = (step, now)
    writer.write(step, "train", values)
    bar.set_postfix(loss=f"{values['loss']:.3f}", **{f"{unit_name}/s": f"{values[f'{unit_name}_per_s']:.0f}"})
    if not np.isfinite(values["loss"]):
      raise FloatingPointError(f"loss is {values['loss']} at step {step}.")

  try:
    for step in range(start + 1, config.total_steps + 1):
      batch = parallel.global_batch(next(data_iter), batch_sharding)
      state, metrics = train_step(state, batch)
      if pending is not None:
        log(*pending)
        pending = None
      if step % config.log_every == 0 or step == config.total_steps:
        pending = (step, metrics)
      bar.update(1)
      if step % config.eval_every == 0 or step == config.total_steps:
        if pending is not None:
          log(*pending)
          pending = None
        results = evaluate(task, eval_step, state, batch_sharding)
        writer.write(step, "eval", results)
        bar.write(f"step {step}: eval " + " ".join(f"{k}={v:.4f}" for k, v in results.items()))
        window = (step, time.time())  # throughput excludes evaluation
      if step % config.checkpoint_every == 0 or step == config.total_steps:
        ckpt.save(step, state, data_iter, {**metadata, "step": step})
      if watcher.signal is not None:
        if pending is not None:
          log(*pending)
        ckpt.save(step, state, data_iter, {**metadata, "step": step}, force=True)
        ckpt.close()
        bar.close()
        print(f"Preempted by signal {watcher.signal}: checkpoint at step {step} written; "
              "rerun the same command to resume.", flush=True)
        return EXIT_PREEMPTED
    if pending is not None:
      log(*pending)
  finally:
    watcher.restore()
    bar.close()
    writer.close()
  ckpt.close()
  if is_main and task.on_end is not None:
    task.on_end(jax.device_get(state.params), jax.device_get(state.model_state), workdir)
  return EXIT_OK
