"""TFDS builders for local images, written as array_record without TensorFlow.

Digits      scikit-learn's bundled 8x8 handwritten digits (1797 images, no download).
ImageFolder a user's own images, one subfolder per class.

Images are stored PNG-encoded (TFDS Image features need encoded bytes without TF).
"""
import hashlib
import io
import os
import sys
import zlib

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from ssl_jax.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def png_bytes(image_HxW_or_HxWxC: np.ndarray) -> bytes:
  buf = io.BytesIO()
  array = np.asarray(image_HxW_or_HxWxC, np.uint8)
  Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array).save(
      buf, format="PNG")
  return buf.getvalue()


class Digits(tfds.core.GeneratorBasedBuilder):
  """scikit-learn's digits: 8x8 grayscale, 17 ink levels scaled to 0..255, 10 classes.

  A fixed split, in the dataset's order: the first 1437 images train, the last 360 test.
  """
  VERSION = tfds.core.Version("1.0.0")
  NUM_TRAIN = 1437

  def __init__(self, *, data_dir: str | None = None):
    super().__init__(data_dir=data_dir, file_format="array_record")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="scikit-learn digits (UCI optdigits test set), 8x8 grayscale.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(8, 8, 1), encoding_format="png"),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"))

  def _split_generators(self, dl_manager):
    from sklearn.datasets import load_digits
    digits = load_digits()
    images_Nx8x8 = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels_N = digits.target.astype(np.int64)
    n = self.NUM_TRAIN
    return {"train": self._generate_examples(images_Nx8x8[:n], labels_N[:n], 0),
            "test": self._generate_examples(images_Nx8x8[n:], labels_N[n:], n)}

  def _generate_examples(self, images, labels, offset):
    for i, (image, label) in enumerate(zip(images, labels)):
      yield offset + i, {"image": png_bytes(image[..., None]), "label": int(label)}


def folder_listing(root: str) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
  """(class names, split -> [(relative image path, class name)]) of an image folder.

  `root/CLASS/*.png`: 1 in 10 images (by a hash of the path) becomes the test split.
  `root/train/CLASS/*` and `root/test/CLASS/*`: those splits as given.
  """
  root = os.path.expanduser(root)
  if not os.path.isdir(root):
    raise DataError(f"The image folder {root!r} does not exist. Point --config.data.source at a "
                    "directory with one subfolder of images per class.")

  def images_under(folder):
    out = []
    for dirpath, _, files in os.walk(os.path.join(root, folder)):
      out += [os.path.relpath(os.path.join(dirpath, f), root) for f in files
              if f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(out)

  def class_dirs(folder):
    path = os.path.join(root, folder)
    return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))

  top = class_dirs("")
  if "train" in top and "test" in top:
    classes = class_dirs("train")
    splits = {s: [(p, c) for c in classes for p in images_under(os.path.join(s, c))]
              for s in ("train", "test")}
  else:
    classes = top
    files = [(p, c) for c in classes for p in images_under(c)]
    is_test = lambda p: zlib.crc32(p.encode()) % 10 == 0
    splits = {"train": [(p, c) for p, c in files if not is_test(p)],
              "test": [(p, c) for p, c in files if is_test(p)]}
  if len(classes) < 2 or not splits["train"] or not splits["test"]:
    raise DataError(
        f"The image folder {root!r} has {len(classes)} class folder(s) and "
        f"{len(splits['train'])}/{len(splits['test'])} train/test images; it needs at least 2 "
        "class subfolders (root/CLASS/*.png, or root/train/CLASS and root/test/CLASS) and images "
        "in both splits.")
  return classes, splits


class ImageFolder(tfds.core.GeneratorBasedBuilder):
  """A user's images, one subfolder per class, re-encoded as RGB PNG at their own size.

  The builder's config name hashes the file listing: adding images makes a new version of
  the dataset instead of silently reusing a stale one.
  """
  VERSION = tfds.core.Version("1.0.0")

  def __init__(self, *, root: str, data_dir: str | None = None):
    self._root = os.path.abspath(os.path.expanduser(root))
    self._classes, self._splits = folder_listing(self._root)
    listing = "\n".join([self._root] + [f"{s}:{p}" for s, ps in self._splits.items()
                                          for p, _ in ps])
    digest = hashlib.sha1(listing.encode()).hexdigest()[:12]
    config = tfds.core.BuilderConfig(name=f"{os.path.basename(self._root)}_{digest}",
                                     description=f"images under {self._root}")
    super().__init__(config=config, data_dir=data_dir, file_format="array_record")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="Local images, one subfolder per class.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
            "label": tfds.features.ClassLabel(names=self._classes),
            "path": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"))

  def _split_generators(self, dl_manager):
    return {split: self._generate_examples(files, split) for split, files in self._splits.items()}

  def _generate_examples(self, files, split: str = "train"):
    unreadable = []
    for rel, label in files:
      try:
        with Image.open(os.path.join(self._root, rel)) as image:
          rgb = np.asarray(image.convert("RGB"))
      except (OSError, ValueError):  # PIL's errors for corrupt or truncated files
        unreadable.append(rel)  # skip it rather than fail the whole build
        continue
      yield rel, {"image": png_bytes(rgb), "label": label, "path": rel}
    if unreadable and len(unreadable) == len(files):
      raise DataError(
          f"None of the {len(files)} files in the {split!r} split of the image folder "
          f"{self._root!r} could be read as an image (e.g. {unreadable[0]}): they are corrupt, "
          "truncated or not images. Replace them, or point --config.data.source at a folder "
          "of readable images (one subfolder per class).")
    if unreadable:
      print(f"warning: skipped {len(unreadable)} file(s) that could not be read as images "
            f"(e.g. {unreadable[0]}) in {self._root}.", file=sys.stderr, flush=True)
