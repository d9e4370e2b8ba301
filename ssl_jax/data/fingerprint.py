"""What identifies a dataset's contents, recorded in each checkpoint and checked on resume.

A fingerprint is the TFDS full name (name/config/version; the local builders put a hash of
their file listing in the config name, so adding or removing files changes it) and, per
split read, the number of examples and the bytes TFDS counted when it prepared the split.
"""
from ssl_jax.errors import ConfigError

KEY = "dataset_fingerprint"  # in Task.metadata and so in every checkpoint's metadata


def of_splits(sources: dict) -> dict:
  """{"name": ..., "splits": {split: {"examples": n, "bytes": b}}} of TFDS data sources."""
  info = getattr(next(iter(sources.values())), "dataset_info", None)
  splits = {}
  for split, source in sources.items():
    entry = {"examples": len(source)}
    try:  # a slice ("train[:90%]") or a sum of splits has no byte count of its own
      entry["bytes"] = int(info.splits[split.split("[")[0]].num_bytes)
    except Exception:
      pass
    splits[split] = entry
  return {"name": getattr(info, "full_name", "unknown"), "splits": splits}


def describe(fingerprint) -> str:
  """One line: 'local_text/files_ab12/1.0.0 (train: 40 examples, 912345 bytes; ...)'."""
  try:
    parts = [f"{split}: " + ", ".join(f"{n} {what}" for what, n in entry.items())
             for split, entry in sorted(fingerprint.get("splits", {}).items())]
    text = f"{fingerprint.get('name')} ({'; '.join(parts)})"
  except (AttributeError, TypeError):  # an older checkpoint's plain name
    text = repr(fingerprint)
  return text[:500]


def _identity(metadata: dict):
  """The fingerprint, or for checkpoints written before fingerprints the dataset name."""
  if KEY in metadata:
    return KEY, metadata[KEY]
  return "dataset", metadata.get("dataset")


def difference(recorded: dict, current: dict) -> str | None:
  """'  checkpoint: ...\n  now: ...' if the two metadata name different data, else None.

  recorded: a checkpoint's metadata; current: the task's. Unknown on either side: None.
  """
  key, was = _identity(recorded)
  now = current.get(key)
  if was is None or now is None or was == now:
    return None
  return f"  checkpoint: {describe(was)}\n  now:        {describe(now)}"


def check_resume(recorded: dict, current: dict, allow_change: bool, log):
  """Refuses (ConfigError) to resume on other data than the checkpoint was trained on;
  with allow_change the change is logged and the run resumes."""
  diff = difference(recorded, current)
  if diff is None:
    return
  what = f"The training data differ from the data the checkpoint was trained on:\n{diff}\n"
  if not allow_change:
    raise ConfigError(what + "Restore the original data (data.source, data.data_dir), use a "
                      "new --workdir, or pass --allow_data_change to resume on the new data.")
  log(what + "Resuming on the new data (--allow_data_change).")
