"""The one generic training loop: init or restore, step, evaluate, checkpoint, preempt.

It knows a Task (tasks/__init__.py), an optax optimizer and a parallel wrapper
(parallel.py: jit over a mesh, or pmap); nothing about models or data.
"""
import json
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ssl_jax import config_check, init_from, optim, parallel, storage, tasks
from ssl_jax.checkpoint import Checkpointer
from ssl_jax.data import fingerprint, pipeline
from ssl_jax.errors import ConfigError, Diverged, Preempted
from ssl_jax.eval_loop import InFlight, sum_batches
from ssl_jax.metrics import MetricWriter
from ssl_jax.step import TrainState, make_train_step
from ssl_jax.watchdog import DEFAULT_GRACE_SECS, DEFAULT_STALL_SECS, Watchdog
from ssl_jax.workdir import claim as claim_workdir


def validate(config):
  """Checks shared by every objective, before anything is built or written."""
  config_check.check(config)  # every field's range, then the objective's own checks
  n = jax.device_count()
  if config.batch_size % n:
    raise ConfigError(f"batch_size={config.batch_size} is not divisible by the {n} devices; "
                      f"use a multiple of {n}.")
  if config.batch_size % (n * config.grad_accum):
    raise ConfigError(f"batch_size={config.batch_size} must split into grad_accum="
                      f"{config.grad_accum} microbatches over {n} devices.")


class PreemptionWatcher:
  """SIGTERM/SIGINT ask the loop to checkpoint and exit 75 after the current step.

  With several processes they must stop at the same step: each process's flag is
  combined with the others' at log intervals (the loop already syncs there).
  """

  def __init__(self, watchdog=None):
    self.signal = None
    self._watchdog = watchdog
    self._previous = {sig: signal.signal(sig, self._handle)
                      for sig in (signal.SIGTERM, signal.SIGINT)}

  def _handle(self, signum, frame):
    if self.signal is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C stops at once
    self.signal = signum
    if self._watchdog is not None:
      self._watchdog.signalled()  # if the loop is blocked, exit after a grace period

  def should_stop(self, sync_now: bool) -> bool:
    if jax.process_count() == 1:
      return self.signal is not None
    if not sync_now:
      return False
    from jax.experimental import multihost_utils
    flags = multihost_utils.process_allgather(np.int32(self.signal is not None))
    return bool(np.any(flags))

  def restore(self):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def evaluate(task, parallelism, eval_step, state, beat=None) -> dict:
  """The task's evaluation metrics over its evaluation batches (the shared eval loop)."""
  total = sum_batches(eval_step, state.params, state.model_state, task.eval_data,
                      to_device=parallelism.batch, beat=beat)
  return {k: float(v) for k, v in task.finalize_eval(parallelism.host(total)).items()}


def train(config, workdir: str, overrides: dict | None = None,
          allow_config_change: bool = False, watchdog_secs: float = DEFAULT_STALL_SECS,
          grace_secs: float = DEFAULT_GRACE_SECS, allow_data_change: bool = False,
          make_task=tasks.make_task, make_parallel=parallel.make):
  """Trains config in workdir (resuming if it holds checkpoints).

  Raises Diverged on a NaN/Inf loss or gradient, and Preempted after SIGTERM/SIGINT once
  the checkpoint of the current step is written (errors.py).

  watchdog_secs: exit EXIT_STALLED with every thread's stack after that long without
  progress (0: never); grace_secs: how long a blocked process may take to exit after
  SIGTERM/SIGINT (watchdog.py). allow_data_change: resume even if the dataset differs
  from the one the checkpoint was trained on (data/fingerprint.py). make_task(config,
  axis_name) and make_parallel(name, fsdp) build the Task and the parallel wrapper (tests
  pass others); the wrapper's axis_name is the task's device axis.
  """
  is_main = jax.process_index() == 0
  log = (lambda msg: print(msg, flush=True)) if is_main else (lambda msg: None)
  config_check.resolve_paths(config)
  validate(config)
  config_check.check_workdir(workdir)  # before data preparation, which can take long
  parallelism = make_parallel(config.parallel, config.mesh.fsdp)
  task = make_task(config, parallelism.axis_name)  # may prepare data; workdir untouched
  tx, schedule = optim.make(config.optim, config.total_steps)

  def init_state(key):
    params_key, rng = jax.random.split(key)
    params, model_state = task.init(params_key)
    return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), model_state,
                      jax.random.key_data(rng))

  key = jax.random.key(config.seed)
  abstract_state = jax.eval_shape(init_state, key)
  parallelism.setup(abstract_state)
  # Weights to start from (config.init_from), read and checked before the workdir is touched.
  start_from = init_from.plan(config, abstract_state, task.metadata, workdir)
  claim_workdir(workdir, config, overrides or {}, allow_config_change, log)  # lock, run.json

  ckpt = Checkpointer(storage.join(workdir, "checkpoints"), keep=config.keep_checkpoints)
  data_iter = pipeline.to_iterator(task.train_data)
  restored = ckpt.restore_latest_good(parallelism.restore_target, data_iter, log=log)
  if restored is not None:
    try:
      fingerprint.check_resume(restored[2], task.metadata, allow_data_change, log)
    except ConfigError:
      ckpt.close()
      raise
    state = parallelism.from_restored(restored[1])
    log(f"Resumed from the checkpoint at step {restored[0]} in {workdir}"
        + (" (init_from applies only to a fresh start)." if config.get("init_from") else "."))
  else:
    state = parallelism.init(init_state, key)
    if start_from is not None:
      state = start_from.apply(state, workdir, log)
  start = int(parallelism.host(state.step))
  if start >= config.total_steps:
    log(f"Already trained: step {start} >= total_steps={config.total_steps}; nothing to do.")
    ckpt.close()
    return

  train_step = parallelism.step(make_train_step(
      task, tx, config.grad_accum, parallelism.axis_name, config.skip_nonfinite))
  eval_step = parallelism.eval(task.eval_sums)
  metadata = {"config": json.loads(config.to_json_best_effort()), **task.metadata}
  # We hold the workdir lock; rows after the restored step are logged again below.
  writer = MetricWriter(workdir, enabled=is_main, repair=True, resume_step=start)
  watchdog = Watchdog(watchdog_secs, grace_secs)
  watchdog.hold(f"compiling the train step (from step {start})")
  watcher = PreemptionWatcher(watchdog)
  in_flight = InFlight(on_done=watchdog.beat)
  unit_name, units_per_step = task.unit
  bar = tqdm(total=config.total_steps, initial=start, disable=not is_main, unit="step",
             dynamic_ncols=True, mininterval=2.0)

  pending = None  # (step, device metrics): read one step late so the host never waits
  flags = []  # (step, device non-finite flags) since the last read; fetched together
  window = [start, time.time()]

  def log_train(step, metrics):
    steps = [s for s, _ in flags]
    bad = [(s, int(f)) for s, f in zip(steps, parallelism.host([f for _, f in flags])) if int(f)]
    flags.clear()
    if bad and not config.skip_nonfinite:
      first, bits = bad[0]
      names = [n for bit, n in ((1, "loss"), (2, "grad_norm")) if bits & bit]
      raise Diverged(f"Non-finite {' and '.join(names)} at step {first}; stopped, and the "
                     "last good checkpoint is kept. Lower optim.lr, or set "
                     "--config.skip_nonfinite=True to skip such steps.")
    values = {k: float(v) for k, v in parallelism.host(metrics).items() if k != "nonfinite"}
    values["skipped_steps"] = float(len(bad))
    values["lr"] = float(schedule(step - 1))
    now = time.time()
    values[f"{unit_name}_per_s"] = (step - window[0]) * units_per_step / max(now - window[1], 1e-9)
    window[:] = [step, now]
    writer.write(step, "train", values)
    bar.set_postfix({"loss": f"{values['loss']:.3f}",
                     f"{unit_name}/s": f"{values[f'{unit_name}_per_s']:.0f}"})

  def save(step, force=False):
    if not saved:
      watchdog.hold("the first checkpoint save (compiling its checksums)")
      saved.append(step)
    ckpt.save(step, parallelism.to_saveable(state), data_iter, {**metadata, "step": step},
              force=force)

  finished = evaluated = False
  saved = []
  try:
    for step in range(start + 1, config.total_steps + 1):
      state, metrics = train_step(state, parallelism.batch(next(data_iter)))
      in_flight.add(metrics, f"train step {step}")
      flags.append((step, metrics["nonfinite"]))
      if pending is not None:
        log_train(*pending)
        pending = None
      bar.update(1)
      is_eval = step % config.eval_every == 0 or step == config.total_steps
      is_ckpt = step % config.checkpoint_every == 0 or step == config.total_steps
      is_log = step % config.log_every == 0 or is_eval or is_ckpt
      if is_log:
        pending = (step, metrics)
      if is_eval or is_ckpt:
        log_train(*pending)  # now, not late: it also guards the checkpoint against NaNs
        pending = None
      if is_eval:
        if not evaluated:
          watchdog.hold("compiling the evaluation step")
          evaluated = True
        results = evaluate(task, parallelism, eval_step, state, beat=watchdog.beat)
        writer.write(step, "eval", results)
        bar.write(f"step {step}: eval " + " ".join(f"{k}={v:.4f}" for k, v in results.items()))
        window[:] = [step, time.time()]  # throughput excludes evaluation
      if is_ckpt:
        save(step)
        writer.flush()  # on an object store: rows up to a checkpoint are durable with it
        watchdog.beat(f"checkpoint at step {step} started")
      if watcher.should_stop(sync_now=is_log):
        if pending is not None:
          log_train(*pending)
        if not is_ckpt:
          save(step, force=True)
        ckpt.close()  # waits until the checkpoint is complete on disk
        bar.close()
        message = (f"Preempted by signal {watcher.signal or 'on another process'}: checkpoint "
                   f"at step {step} written; rerun the same command to resume.")
        log(message)
        raise Preempted(message)
    watchdog.beat("training done; finishing the last checkpoint")
    finished = True
  finally:
    watcher.restore()
    bar.close()
    writer.close()
    ckpt.close()  # also on errors: finishes saves already started (the last good state)
    if not finished:
      watchdog.stop()
  try:
    if task.on_end is not None:
      watchdog.beat("last checkpoint written; gathering the parameters for the end of run")
      params, model_state = parallelism.host((state.params, state.model_state))  # collective
      if is_main:
        task.on_end(params, model_state, workdir)
  finally:
    watchdog.stop()
