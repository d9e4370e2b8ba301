"""Image datasets: the digits builder, the image-folder builder, standard TFDS datasets
(offline, with tfds.testing.mock_data) and clear errors for missing data."""
import os

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from ssl_jax.data import images
from ssl_jax.errors import DataError


def data_config(data_dir, **changes):
  c = ml_collections.ConfigDict(dict(
      name="digits", source="", data_dir=data_dir, train_split="train", eval_split="test",
      probe_split="train", image_size=8))
  c.update(changes)
  return c


def test_digits_are_sklearn_digits_with_a_fixed_split(data_dir):
  from sklearn.datasets import load_digits
  data = images.load(data_config(data_dir))
  assert (len(data.train), len(data.eval), data.num_classes) == (1437, 360, 10)
  x, y = images.load_arrays(data.eval, 8)
  assert x.shape == (360, 8, 8, 3) and x.dtype == np.uint8 and y.dtype == np.int32
  np.testing.assert_array_equal(x[..., 0], x[..., 2])  # gray, repeated to RGB
  reference = load_digits()
  want = np.round(reference.images[1437:] * 255 / 16).astype(np.uint8)
  # Same images and labels as the last 360 of scikit-learn's, in TFDS's stored order.
  lookup = {w.tobytes(): label for w, label in zip(want, reference.target[1437:])}
  assert all(lookup[img[..., 0].tobytes()] == label for img, label in zip(x, y))
  assert len({img[..., 0].tobytes() for img in x}) == len(lookup)
  # Resizing happens at load time; augmentation does not.
  count, load_rows = images.image_loader(data.train, 16)
  rows = load_rows(np.array([3, 0, 5]))
  assert count == 1437 and rows["image"].shape == (3, 16, 16, 3)
  np.testing.assert_array_equal(load_rows(np.array([3, 0, 5]))["image"], rows["image"])


def _write_class_images(folder, colour, count, sizes):
  os.makedirs(folder, exist_ok=True)
  for i in range(count):
    w, h = sizes[i % len(sizes)]
    mode = ("RGB", "L", "RGBA")[i % 3]
    pixel = colour if mode != "L" else sum(colour) // 3
    if mode == "RGBA":
      pixel = (*colour, 255)
    Image.new(mode, (w, h), pixel).save(os.path.join(folder, f"img{i}.png"))


COLOURS = {"cat": (200, 0, 0), "dog": (0, 200, 0), "emu": (0, 0, 200)}


@pytest.mark.parametrize("layout", ["flat", "split"])
def test_image_folder_builder(tmp_path, layout):
  root = tmp_path / "photos"
  for name, colour in COLOURS.items():
    if layout == "flat":
      _write_class_images(root / name, colour, 15, [(10, 14), (20, 9)])
    else:
      _write_class_images(root / "train" / name, colour, 6, [(12, 12)])
      _write_class_images(root / "test" / name, colour, 2, [(7, 11)])
  (root / "README.txt").write_text("not an image")
  cfg = data_config(str(tmp_path / "tfds"), name="image_folder", source=str(root), image_size=6)
  data = images.load(cfg)
  assert data.num_classes == 3
  total = 45 if layout == "flat" else 24
  assert len(data.train) + len(data.eval) == total
  assert 0 < len(data.eval) < len(data.train)
  if layout == "split":
    assert len(data.eval) == 6  # the given test/ folder, not a hash split
  for split in (data.train, data.eval):
    x, y = images.load_arrays(split, 6)
    assert x.shape == (len(split), 6, 6, 3)
    names = sorted(COLOURS)
    for img, label in zip(x, y):  # colour tells the class (gray images: equal channels)
      colour = np.array(COLOURS[names[label]])
      is_gray = img[0, 0, 0] == img[0, 0, 1] == img[0, 0, 2]
      expected = np.full(3, colour.sum() // 3) if is_gray else colour
      np.testing.assert_allclose(img[0, 0], expected, atol=2)
  paths = {split[i]["path"] for split in (data.train, data.eval) for i in range(len(split))}
  assert len(paths) == total  # the splits do not overlap


def test_missing_or_bad_image_data_is_a_data_error(tmp_path):
  with pytest.raises(DataError, match="does not exist"):
    images.load(data_config(str(tmp_path), name="image_folder", source=str(tmp_path / "none")))
  _write_class_images(tmp_path / "one" / "only", (1, 2, 3), 4, [(4, 4)])
  with pytest.raises(DataError, match="at least 2"):
    images.load(data_config(str(tmp_path), name="image_folder", source=str(tmp_path / "one")))
  with pytest.raises(DataError, match="tfds build cifar10"):
    images.load(data_config(str(tmp_path / "empty"), name="cifar10"))


def test_standard_tfds_dataset_offline_with_mock_data(tmp_path):
  with tfds.testing.mock_data(num_examples=12):
    data = images.load(data_config(str(tmp_path), name="cifar10", image_size=32))
    assert data.num_classes == 10 and len(data.train) == 12
    count, load_rows = images.image_loader(data.train, 32)
    rows = load_rows(np.arange(5))
    assert rows["image"].shape == (5, 32, 32, 3) and rows["image"].dtype == np.uint8
    assert rows["label"].min() >= 0 and rows["label"].max() < 10
    assert images.image_loader(data.eval, 16)[1](np.arange(2))["image"].shape == (2, 16, 16, 3)
    stl = images.load(data_config(str(tmp_path), name="stl10", train_split="unlabelled",
                                  image_size=24))
    assert stl.probe is not stl.train  # pretrain on unlabelled, probe on labelled train
    assert images.load_arrays(stl.train, 24)[0].shape == (12, 24, 24, 3)


def test_to_rgb_resizes_and_converts():
  from ssl_jax.data.image_builders import png_bytes
  gray = np.arange(40, dtype=np.uint8).reshape(5, 8)
  out = images.to_rgb(png_bytes(gray[..., None]), 5)  # bytes; shorter side 5, centre crop
  assert out.shape == (5, 5, 3)
  np.testing.assert_array_equal(out[..., 0], gray[:, 1:6])
  rgba = np.zeros((6, 6, 4), np.uint8)
  assert images.to_rgb(rgba, 3).shape == (3, 3, 3)
