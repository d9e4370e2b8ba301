"""Labelled image datasets: TFDS split -> fixed-size uint8 RGB batches for grain.

`data.name` picks the source:
  digits        scikit-learn's digits, built locally (the embedded default)
  image_folder  `data.source` is a directory with one subfolder per class
  anything else a TFDS image dataset (cifar10, cifar100, stl10, imagenet2012, ...) already
                prepared as array_record in `data.data_dir`

Loading only decodes and resizes to `data.image_size` (shorter side, then centre crop).
Augmentation happens later, on device (data/augment.py).
"""
import dataclasses

import numpy as np
from PIL import Image

from ssl_jax.data import fingerprint, image_builders, pipeline, prepare
from ssl_jax.data.prepare import data_dir
from ssl_jax.errors import DataError

DIGITS = "digits"
IMAGE_FOLDER = "image_folder"
KNOWN_TFDS = ("cifar10", "cifar100", "stl10", "imagenet2012")


def _local_builder(cfg):
  """The project's own builder for cfg, prepared in data_dir(cfg) if it is not yet."""
  if cfg.name == DIGITS:
    make = lambda root: image_builders.Digits(data_dir=root)  # noqa: E731
  else:
    make = lambda root: image_builders.ImageFolder(root=cfg.source, data_dir=root)  # noqa: E731
  return prepare.prepared(make, data_dir(cfg), cfg.name)


def open_split(cfg, split: str):
  """(random-access source of {"image", "label", ...} examples, number of classes)."""
  if cfg.name in (DIGITS, IMAGE_FOLDER):
    builder = _local_builder(cfg)
    source = builder.as_data_source(split=split)
    info = builder.info
  else:
    how = (f"Prepare it where there is network access with `tfds build {cfg.name} "
           f"--file_format=array_record --data_dir=DIR` and pass --config.data.data_dir=DIR "
           f"(known image datasets: {', '.join(KNOWN_TFDS)}; or data.name={DIGITS!r} / "
           f"{IMAGE_FOLDER!r}).")
    source = prepare.open_tfds(cfg, split, how)
    info = source.dataset_info
  features = info.features
  if "image" not in features or "label" not in features:
    raise DataError(f"{cfg.name!r} has no 'image' and 'label' features; it is not an image "
                    "classification dataset.")
  if len(source) == 0:
    raise DataError(f"The {split!r} split of {cfg.name!r} is empty.")
  return source, features["label"].num_classes


@dataclasses.dataclass
class ImageData:
  name: str
  num_classes: int
  train: object  # pretraining split (labels unused)
  eval: object  # held-out split: training-time evaluation and the transfer test set
  probe: object  # labelled split for linear / kNN / few-shot / fine-tuning training
  fingerprint: dict | None = None  # of train and eval (data/fingerprint.py)


def load(cfg) -> ImageData:
  """Opens (building local datasets if needed) the three splits that config.data names.

  With several processes, process 0 builds first; the others then read.
  """
  return pipeline.process_0_first(lambda: _load(cfg), "images")


def _load(cfg) -> ImageData:
  train, num_classes = open_split(cfg, cfg.train_split)
  evals, _ = open_split(cfg, cfg.eval_split)
  probe = train if cfg.probe_split == cfg.train_split else open_split(cfg, cfg.probe_split)[0]
  return ImageData(cfg.name, num_classes, train, evals, probe,
                   fingerprint.of_splits({cfg.train_split: train, cfg.eval_split: evals}))


def to_rgb(image, size: int) -> np.ndarray:
  """uint8 [size, size, 3]: decode if bytes, resize the shorter side, crop the centre."""
  if isinstance(image, (bytes, bytearray)):
    import io
    pil = Image.open(io.BytesIO(image))
  else:
    array = np.asarray(image)
    pil = Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array)
  pil = pil.convert("RGB")
  w, h = pil.size
  if min(w, h) != size:
    scale = size / min(w, h)
    w, h = max(size, round(w * scale)), max(size, round(h * scale))
    pil = pil.resize((w, h), Image.BICUBIC)
  if (w, h) != (size, size):
    left, top = (w - size) // 2, (h - size) // 2
    pil = pil.crop((left, top, left + size, top + size))
  return np.asarray(pil, np.uint8)


def image_loader(source, image_size: int):
  """(number of examples, load_rows): load_rows(indices) -> {"image": uint8, "label": int32}."""

  def load_rows(idx_B):
    examples = [source[int(i)] for i in idx_B]
    return {
        "image": np.stack([to_rgb(ex["image"], image_size) for ex in examples]),
        "label": np.asarray([ex["label"] for ex in examples], np.int32),
    }

  return len(source), load_rows


def load_arrays(source, image_size: int, limit: int = 0, chunk: int = 1024):
  """(images uint8 [N, S, S, 3], labels int32 [N]) of a whole split (or its first `limit`)."""
  count, load_rows = image_loader(source, image_size)
  count = min(count, limit) if limit else count
  parts = [load_rows(np.arange(i, min(i + chunk, count))) for i in range(0, count, chunk)]
  return (np.concatenate([p["image"] for p in parts]),
          np.concatenate([p["label"] for p in parts]))
