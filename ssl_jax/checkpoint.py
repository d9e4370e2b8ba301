"""Orbax checkpoints: train state + grain iterator state + JSON run metadata, per step."""
import grain
import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Thin wrapper over ocp.CheckpointManager with the three items of a ssl_jax checkpoint."""

  def __init__(self, directory: str, keep: int = 3, async_save: bool = True):
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=async_save, create=True)
    self.manager = ocp.CheckpointManager(directory, options=options)

  def latest_step(self):
    return self.manager.latest_step()

  def all_steps(self):
    return list(self.manager.all_steps())

  def save(self, step: int, state, data_iter, metadata: dict, force: bool = False) -> bool:
    items = {"state": ocp.args.StandardSave(state), "metadata": ocp.args.JsonSave(metadata)}
    if data_iter is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iter)
    return self.manager.save(step, args=ocp.args.Composite(**items), force=force)

  def restore(self, step: int, abstract_state=None, data_iter=None):
    """(state, metadata); restores `data_iter` in place when given.

    With `abstract_state` (ShapeDtypeStructs carrying shardings) arrays land sharded as
    asked, whatever the device count at save time; without it, whole on the first local
    device (for tools that read a finished run).
    """
    if abstract_state is None:
      abstract_state = self._local_target(step)
    items = {"state": ocp.args.StandardRestore(abstract_state), "metadata": ocp.args.JsonRestore()}
    if data_iter is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
    out = self.manager.restore(step, args=ocp.args.Composite(**items))
    return out["state"], out["metadata"]

  def _local_target(self, step: int):
    """Shapes and dtypes as saved, placed on this process's first device (any topology)."""
    import os
    path = os.path.join(str(self.manager.directory), str(step), "state")
    tree = ocp.StandardCheckpointer().metadata(path).item_metadata
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)

  def restore_latest_good(self, abstract_state=None, data_iter=None, log=print):
    """(step, state, metadata) of the newest checkpoint that restores, or None if none exist.

    A checkpoint that fails to restore is reported, renamed to STEP.unreadable (kept for
    inspection, never deleted) and the previous one is tried. Unfinished saves
    (STEP.orbax-checkpoint-tmp*) are never listed as steps in the first place.
    """
    import os
    for step in sorted(self.all_steps(), reverse=True):
      try:
        state, metadata = self.restore(step, abstract_state, data_iter)
        return step, state, metadata
      except Exception as e:  # any failure to read means this checkpoint is unusable
        path = os.path.join(str(self.manager.directory), str(step))
        aside = f"{path}.unreadable"
        if jax.process_index() == 0 and os.path.exists(path):
          os.replace(path, aside)
        if jax.process_count() > 1:
          from jax.experimental import multihost_utils
          multihost_utils.sync_global_devices(f"ssl_jax_unreadable_{step}")
        log(f"WARNING: the checkpoint at step {step} could not be restored "
            f"({type(e).__name__}: {str(e)[:300]}); moved it to {aside} and trying the previous one.")
        self.manager.reload()
    return None

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    if self.manager is not None:
      self.manager.wait_until_finished()
      self.manager.close()
      self.manager = None


def load_latest(workdir: str):
  """(step, state as nested dicts of arrays, metadata) of the newest checkpoint in workdir.

  For tools that read a finished run (sampling, evaluation); raises ConfigError if none.
  """
  import os
  from ssl_jax.errors import ConfigError
  path = os.path.join(os.path.abspath(workdir), "checkpoints")
  if not os.path.isdir(path):
    raise ConfigError(f"No checkpoints in {workdir}; train first with python -m ssl_jax.main.")
  ckpt = Checkpointer(path, async_save=False)
  try:
    step = ckpt.latest_step()
    if step is None:
      raise ConfigError(f"No finished checkpoint in {path}.")
    state, metadata = ckpt.restore(step)
  finally:
    ckpt.close()
  return step, state, metadata
