"""Where datasets live (the TFDS data_dir, local or gs://) and preparing the project's own
TFDS builders there once.

array_record writes local files only, so a dataset for a gs:// data_dir is prepared in a
local temporary directory and uploaded, dataset_info.json last: a dataset counts as
prepared only once that file exists, so an interrupted upload is redone, never half-read.
With several processes the callers run this on process 0 first (pipeline.process_0_first).
"""
import os
import sys
import tempfile

from ssl_jax import storage
from ssl_jax.errors import DataError

INFO_FILE = "dataset_info.json"


def data_dir(cfg) -> str:
  """cfg.data_dir (a data config), else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
  path = cfg.get("data_dir") or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
  return path if storage.is_url(path) else os.path.expanduser(path)


def is_prepared(builder) -> bool:
  return storage.exists(storage.join(str(builder.data_dir), INFO_FILE))


def prepared(make_builder, root: str, what: str):
  """make_builder(root) -> a TFDS builder of the project's own, prepared in root if needed."""
  builder = make_builder(root)
  if is_prepared(builder):
    return builder
  if not storage.is_url(root):
    _say(f"Preparing {what} as array_record in {builder.data_dir} ...")
    builder.download_and_prepare()
    return builder
  with tempfile.TemporaryDirectory(prefix="ssl_jax_prepare_") as tmp:
    local = make_builder(tmp)
    _say(f"Preparing {what} as array_record locally, then uploading it to {builder.data_dir} ...")
    local.download_and_prepare()
    upload_tree(str(local.data_dir), storage.join(root, os.path.relpath(local.data_dir, tmp)))
  return make_builder(root)


def upload_tree(local_dir: str, url: str):
  """Copies the files under local_dir to url/..., dataset_info.json last."""
  files = sorted(os.path.relpath(os.path.join(d, n), local_dir)
                 for d, _, names in os.walk(local_dir) for n in names)
  files.sort(key=lambda rel: rel == INFO_FILE)  # stable: the info file goes last
  fs = storage.filesystem(url)
  try:
    for rel in files:
      fs.put_file(os.path.join(local_dir, rel), storage.join(url, rel))
  except OSError as e:
    raise DataError(f"Could not upload the prepared dataset to {url} ({e}). Prepare it into a "
                    "data_dir this account can write, or upload a prepared copy there.") from e


def _say(message: str):
  print(message, file=sys.stderr, flush=True)


def open_tfds(cfg, split: str, how: str, **kwargs):
  """tfds.data_source(**kwargs) of a dataset prepared elsewhere (never downloaded);
  DataError, with `how` to prepare it, if it is missing or cannot be opened."""
  import tensorflow_datasets as tfds
  try:
    return tfds.data_source(cfg.name, data_dir=data_dir(cfg), split=split, download=False,
                            **kwargs)
  except Exception as e:  # tfds raises several types for "not prepared" / "unknown split"
    folder = storage.join(data_dir(cfg), cfg.name.split(":")[0].split("/")[0])
    if not storage.isdir(folder):  # tfds's own message is misleading then
      raise DataError(f"TFDS dataset {cfg.name!r} is not in {data_dir(cfg)}. {how}") from e
    raise DataError(f"Could not open TFDS dataset {cfg.name!r} split {split!r} in "
                    f"{data_dir(cfg)}: {e}\n{how}") from e

