"""Orbax checkpoints: train state + grain iterator state + JSON run metadata, per step.

The metadata item also records a checksum of every state array (checksums.py), checked
on restore: a checkpoint whose data files were damaged after writing counts as unreadable.
"""
import contextlib
import sys

import grain
import jax
import orbax.checkpoint as ocp

from ssl_jax import checksums, storage

CHECKSUMS = "checksums"  # metadata key; popped before metadata is handed back
MAX_RELISTS = 20  # readers re-list at most this often when steps vanish under them


class Checkpointer:
  """Thin wrapper over ocp.CheckpointManager with the three items of a ssl_jax checkpoint."""

  def __init__(self, directory: str, keep: int = 3, async_save: bool = True,
               read_only: bool = False):
    if read_only:  # a reader never creates, deletes or cleans up anything
      options = ocp.CheckpointManagerOptions(
          read_only=True, create=False, max_to_keep=None, save_interval_steps=0,
          enable_async_checkpointing=False)
    else:
      options = ocp.CheckpointManagerOptions(
          max_to_keep=keep, enable_async_checkpointing=async_save, create=True)
    self.manager = ocp.CheckpointManager(directory, options=options)

  def latest_step(self):
    return self.manager.latest_step()

  def all_steps(self):
    return list(self.manager.all_steps())

  def save(self, step: int, state, data_iter, metadata: dict, force: bool = False) -> bool:
    if not force and not self.manager.should_save(step):
      return False  # skip the checksum pass too
    # One pass over the state (a collective across processes); restore checks it.
    metadata = {**metadata, CHECKSUMS: checksums.of_tree(state)}
    items = {"state": ocp.args.StandardSave(state), "metadata": ocp.args.JsonSave(metadata)}
    if data_iter is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iter)
    return self.manager.save(step, args=ocp.args.Composite(**items), force=force)

  def restore(self, step: int, abstract_state=None, data_iter=None):
    """(state, metadata); restores `data_iter` in place when given.

    With `abstract_state` (ShapeDtypeStructs carrying shardings) arrays land sharded as
    asked, whatever the device count at save time; without it, whole on the first local
    device (for tools that read a finished run). Raises checksums.ChecksumMismatch if the
    arrays read back differ from those saved (checkpoints from before checksums: unchecked).
    """
    _drop_echoes_of_failed_reads()
    if abstract_state is None:
      abstract_state = self._local_target(step)
    items = {"state": ocp.args.StandardRestore(abstract_state), "metadata": ocp.args.JsonRestore()}
    if data_iter is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
    out = self.manager.restore(step, args=ocp.args.Composite(**items))
    metadata = dict(out["metadata"])
    recorded = metadata.pop(CHECKSUMS, None)
    if recorded is not None:
      checksums.verify(out["state"], recorded)  # every process: a collective
    return out["state"], metadata

  def _step_path(self, step: int) -> str:
    return storage.join(str(self.manager.directory), str(step))

  def _local_target(self, step: int):
    """Shapes and dtypes as saved, placed on this process's first device (any topology)."""
    path = storage.join(self._step_path(step), "state")
    tree = ocp.StandardCheckpointer().metadata(path).item_metadata
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)

  def restore_latest_good(self, abstract_state=None, data_iter=None, log=print):
    """(step, state, metadata) of the newest checkpoint that restores, or None if none exist.

    A checkpoint that fails to restore (unreadable, or its checksums differ) is reported,
    renamed to STEP.unreadable (STEP.unreadable.1, ... if taken; kept for inspection, never
    deleted) and the previous one is tried. Unfinished saves (STEP.orbax-checkpoint-tmp*)
    are never listed as steps in the first place. For the training run that owns the
    directory only: readers use restore_newest_readable, which changes nothing.
    """
    for step in sorted(self.all_steps(), reverse=True):
      try:
        state, metadata = self.restore(step, abstract_state, data_iter)
        return step, state, metadata
      except Exception as e:  # any failure to read means this checkpoint is unusable
        path = self._step_path(step)
        aside = "aside"
        if jax.process_index() == 0 and storage.exists(path):
          aside = _free_name(f"{path}.unreadable")
          storage.rename(path, aside)
        if jax.process_count() > 1:
          from jax.experimental import multihost_utils
          multihost_utils.sync_global_devices(f"ssl_jax_unreadable_{step}")
        log(f"WARNING: the checkpoint at step {step} could not be restored ({_brief(e)}); "
            f"moved it to {aside} and trying the previous one.")
        self.manager.reload()
    return None

  def restore_newest_readable(self, abstract_state=None, warn=None):
    """(step, state, metadata) of the newest checkpoint that restores, for readers.

    Changes nothing on disk. An unreadable checkpoint is skipped with a one-line warning;
    a step that disappears while being read (a live run deleting old checkpoints) is not
    unreadable: the steps are listed again and the newest is tried first. Raises
    ConfigError if there is no checkpoint, or none restores.
    """
    from ssl_jax.errors import ConfigError
    warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
    failed = {}
    for _ in range(MAX_RELISTS):
      self.manager.reload()
      steps = [s for s in sorted(self.all_steps(), reverse=True) if s not in failed]
      vanished = False
      for step in steps:
        try:
          state, metadata = self.restore(step, abstract_state)
          return step, state, metadata
        except Exception as e:  # any failure to read: try an older one
          if not storage.isdir(self._step_path(step)):
            vanished = True  # deleted under us: newer steps may exist now
            break
          failed[step] = e
          warn(f"warning: skipping the checkpoint at step {step} in {self.manager.directory}: "
               f"it could not be restored ({_brief(e)}).")
      if not vanished:
        break
    where = self.manager.directory
    if not failed:
      raise ConfigError(f"No finished checkpoint in {where}.")
    raise ConfigError(
        f"None of the checkpoints in {where} could be restored (steps "
        f"{', '.join(map(str, sorted(failed)))}; the newest failed with {_brief(failed[max(failed)])}). "
        "Resume training from a good copy of the workdir, or train again.")

  def close(self):
    if self.manager is not None:
      self.manager.wait_until_finished()
      self.manager.close()
      self.manager = None


def _free_name(path: str) -> str:
  """path, or path.1, path.2, ...: the first that does not exist yet."""
  candidate, n = path, 0
  while storage.exists(candidate):
    n += 1
    candidate = f"{path}.{n}"
  return candidate


def _drop_echoes_of_failed_reads():
  """Filters Orbax's discarded array reads out of sys.unraisablehook (installed once).

  When one array of a checkpoint cannot be read, Orbax's concurrent reads of the others
  fail too and are discarded unawaited; Python then reports each one, with its whole
  TensorStore spec: thousands of lines after the one line that says which step failed.
  """
  previous = sys.unraisablehook
  if getattr(previous, "drops_orbax_read_echoes", False):
    return

  def hook(unraisable):
    code = getattr(unraisable.object, "cr_code", None)
    if code is not None and "orbax" in code.co_filename and code.co_name.startswith("_read"):
      return
    previous(unraisable)

  hook.drops_orbax_read_echoes = True
  sys.unraisablehook = hook


def _brief(error: Exception) -> str:
  """'Type: first line of the message', short enough for a one-line warning."""
  lines = str(error).strip().splitlines()
  return f"{type(error).__name__}: {(lines[0] if lines else '')[:200]}"


def load_latest(workdir: str, warn=None):
  """(step, state as nested dicts of arrays, metadata) of the newest readable checkpoint.

  For tools that read a run, finished or still training (sampling, evaluation): read-only,
  skips unreadable checkpoints with a warning on stderr (or `warn(msg)`); raises
  ConfigError if there are none or none restores.
  """
  from ssl_jax.errors import ConfigError
  workdir = storage.resolve("--workdir", workdir)
  if storage.is_url(workdir):
    storage.check_url("--workdir", workdir, write=False)
  path = storage.join(workdir, "checkpoints")
  if not storage.isdir(path):
    raise ConfigError(f"No checkpoints in {workdir}; train first with python -m ssl_jax.main.")
  with _quiet_orbax():
    ckpt = Checkpointer(path, read_only=True)
    try:
      return ckpt.restore_newest_readable(warn=warn)
    finally:
      ckpt.close()


def load_step(workdir: str, step: int | None = None):
  """(step, params, model_state, validated metadata) of the checkpoint at `step` (default:
  the newest readable), for tools that take weights out of a run (export, init_from)."""
  from ssl_jax import checkpoint_metadata
  from ssl_jax.errors import ConfigError
  if step is None:
    step, state, metadata = load_latest(workdir)
  else:
    path = storage.join(workdir, "checkpoints")
    with _quiet_orbax():
      ckpt = Checkpointer(path, read_only=True) if storage.isdir(path) else None
      try:
        steps = ckpt.all_steps() if ckpt else []
        if step not in steps:
          raise ConfigError(f"No checkpoint at step {step} in {workdir}; steps there: "
                            f"{', '.join(map(str, sorted(steps))) or 'none'}.")
        state, metadata = ckpt.restore(step)
      finally:
        if ckpt:
          ckpt.close()
  metadata = checkpoint_metadata.check(metadata)
  if "config" not in metadata:
    raise ConfigError(f"The checkpoint in {workdir} has no config in its metadata.")
  return int(step), state["params"], state.get("model_state", {}) or {}, metadata


@contextlib.contextmanager
def _quiet_orbax():
  """Orbax warns on every read-only open; readers print their own one-line warnings."""
  from absl import logging
  before = logging.get_verbosity()
  if before <= logging.WARNING:  # leave INFO/DEBUG alone when someone asked for them
    logging.set_verbosity(logging.ERROR)
  try:
    yield
  finally:
    logging.set_verbosity(before)
