"""Paired data for two-tower pretraining: code pairs from Python files, captioned image
folders, and TFDS captioning datasets opened by name."""
import io
import os
import shutil

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from ssl_jax.data import images, pairs
from ssl_jax.data.pair_builders import CodePairs
from ssl_jax.errors import ConfigError, DataError

AREA = '''"""Areas of simple shapes."""
import math


def circle_area(radius):
  """Return the area of a circle of this radius.

  Further paragraphs are not part of the summary.
  """
  return math.pi * radius ** 2


def square_area(side):
  return side * side


def not_yet(x):
  """Compute something nobody has written yet."""


def placeholder(x):
  """A placeholder with only a pass."""
  pass


def tiny(x):
  """Square it."""
  return x * x


class Polygon:
  """Class docstrings are not pairs."""

  @property
  def corners(self):
    """Number of corners of the polygon."""
    return len(self.points)

  async def fetch(self, url):
    """Fetch the polygon's points from a URL."""
    return await load(url)

  def perimeter(self):
    """Sum of the lengths of all the sides."""
    def side(a, b):
      """Distance between two neighbouring points."""
      return math.dist(a, b)
    return sum(side(a, b) for a, b in zip(self.points, self.points[1:]))
'''

COPY_OF_AREA = '''import math


def circle_area(radius):
  """Area of a disc, copied from area.py."""
  return math.pi * radius ** 2


def circle_area_again(r):
  """Return the area of a circle of this radius."""
  return 3.14159 * r * r


def rectangle_area(width, height):
    """Width times height of a rectangle."""
    return width * height
'''

DRAW = '''import functools


def draw(shape, canvas):
  """Draw the shape onto the canvas in place."""
  for point in shape.points:
    canvas.plot(point)


def one_liner(x): "Double the given number quickly."; return 2 * x


@functools.lru_cache(maxsize=None)
def cached_colour(name):
  """Look up a colour by its name."""
  return COLOURS[name]
'''

UTIL = '''def naïve_mean(values):
  """Mean of the values — the naïve way."""
  return sum(values) / len(values)  # plain average
'''

EXPECTED = {  # file -> qualnames of its pairs (area.py is the validation file)
    "area.py": {"circle_area", "Polygon.corners", "Polygon.fetch", "Polygon.perimeter",
                "Polygon.perimeter.<locals>.side"},
    "copy_of_area.py": {"rectangle_area"},
    "draw.py": {"draw", "one_liner", "cached_colour"},
    "util.py": {"naïve_mean"},
}


def write_tree(root, files: dict):
  os.makedirs(root, exist_ok=True)
  for name, text in files.items():
    with open(os.path.join(root, name), "wb") as f:
      f.write(text if isinstance(text, bytes) else text.encode("utf-8"))
  return str(root)


def shapes_tree(root):
  return write_tree(root, {
      "area.py": AREA, "copy_of_area.py": COPY_OF_AREA, "draw.py": DRAW, "util.py": UTIL,
      "__init__.py": "", "nodocs.py": "def plain(x):\n  return x\n",
      "broken.py": "def broken(:\n  pass\n",
      "latin.py": b'def cafe():\n  """Caf\xe9 au lait for everyone."""\n  return 1\n'})


def examples(builder) -> dict:
  """split -> [(id, text, code)] in stored order."""
  out = {}
  for split in ("train", "validation"):
    source = builder.as_data_source(split=split)
    out[split] = [tuple(source[i][k].decode() for k in ("id", "text", "code"))
                  for i in range(len(source))]
  return out


def built(source, data_dir):
  builder = CodePairs(source=source, data_dir=str(data_dir))
  builder.download_and_prepare()
  return builder


def test_code_pairs_from_a_small_tree(tmp_path, capfd):
  root = shapes_tree(tmp_path / "shapes")
  first = examples(built(f"{root}/*.py", tmp_path / "a"))
  err = capfd.readouterr().err
  assert "skipped 2 file(s) that could not be read or parsed" in err and "broken.py" in err
  found = {}
  for split, rows in first.items():
    for key, text, code in rows:
      rel, qualname, _ = key.split(":")
      found.setdefault(rel, {})[qualname] = (split, text, code)
  assert {rel: set(q) for rel, q in found.items()} == EXPECTED  # duplicates dropped too
  for rel, functions in found.items():  # every function of a file is on one side
    assert len({split for split, _, _ in functions.values()}) == 1
  assert {s for s, _, _ in found["area.py"].values()} == {"validation"}
  for _, text, code in [r for rows in first.values() for r in rows]:
    assert text not in code and '"""' not in code.split("\n")[1]
  area = found["area.py"]
  assert area["circle_area"][1] == "Return the area of a circle of this radius."
  assert area["circle_area"][2] == "def circle_area(radius):\n  return math.pi * radius ** 2"
  assert area["Polygon.corners"][2].startswith("@property\ndef corners(self):\n  return")
  assert found["draw.py"]["one_liner"][2] == "def one_liner(x):\n    return 2 * x"
  assert found["draw.py"]["cached_colour"][2].startswith("@functools.lru_cache")
  assert found["util.py"]["naïve_mean"][2].endswith("# plain average")  # source, not unparse
  for side in (1, 2):  # no text and no code twice, in one split or across both
    values = [" ".join(r[side].split()) for rows in first.values() for r in rows]
    assert len(values) == len(set(values))
  again = examples(built(f"{root}/*.py", tmp_path / "b"))
  assert again == first  # same examples, same order, same keys


def test_code_pairs_need_documented_python(tmp_path):
  root = write_tree(tmp_path / "bare", {f"m{i}.py": f"def f{i}(x):\n  return x\n"
                                        for i in range(4)})
  with pytest.raises(DataError, match="gave no 'train' pairs.*config.data.source"):
    built(f"{root}/*.py", tmp_path / "tfds")
  with pytest.raises(DataError, match="no Python"):
    CodePairs(source=str(tmp_path / "bare" / "*.txt"), data_dir=str(tmp_path / "tfds"))


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
  """The stdlib's json, email and http packages, copied: real code and real docstrings."""
  root = tmp_path_factory.mktemp("stdlib_copy")
  for name in ("json", "email", "http"):
    src = os.path.dirname(__import__(name).__file__)
    shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
  return str(root)


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("pairs_tfds"))


def code_config(source, data_dir, **changes):
  c = ml_collections.ConfigDict(dict(
      name=pairs.CODE, source=source, data_dir=data_dir, train_split="train",
      eval_split="validation", tokenizer="bytes", vocab_size=0, text_len=32, pair_len=96,
      image_size=0, text_key="text", image_key="image"))
  c.update(changes)
  return c


def test_code_pairs_of_stdlib_packages(packages, pair_dir):
  data = pairs.load(code_config(f"{packages}/**/*.py", pair_dir))
  train, val = data.raw("train"), data.raw("validation")
  assert len(train[0]) > 200 and len(val[0]) > 10
  assert set(train[0]).isdisjoint(val[0]) and set(train[1]).isdisjoint(val[1])
  train_files = {i.split(":")[0] for i in train[2]}
  assert train_files.isdisjoint(i.split(":")[0] for i in val[2])


def test_code_pairs_of_the_whole_stdlib(tmp_path):
  builder = built("stdlib", tmp_path)  # about 15 s: 1,800 files, 8,500 documented functions
  rows = examples(builder)
  assert len(rows["train"]) > 5000 and len(rows["validation"]) > 100
  for side in (1, 2):
    train, val = ({r[side] for r in rows[s]} for s in ("train", "validation"))
    assert train.isdisjoint(val)
  files = [{r[0].split(":")[0] for r in rows[s]} for s in ("train", "validation")]
  assert files[0].isdisjoint(files[1]) and "json/decoder.py" in files[0] | files[1]


def test_load_code_pairs_end_to_end(packages, pair_dir):
  cfg = code_config(f"{packages}/**/*.py", pair_dir)
  data = pairs.load(cfg)
  assert data.sides == ("text", "code") and data.dataset.startswith("code_pairs/files_")
  assert data.fingerprint["splits"]["validation"]["examples"] == len(data.raw("validation")[0])
  count, load_rows = data.loader("validation")
  rows = load_rows(np.array([2, 0, count - 1]))
  assert rows["text"].shape == (3, 32) and rows["pair"].shape == (3, 96)
  assert rows["text"].dtype == rows["pair"].dtype == np.int32
  texts, codes, _ = data.raw("validation")
  for r, i in enumerate((2, 0, count - 1)):
    for tokens, full in ((rows["text"][r], texts[i]), (rows["pair"][r], codes[i])):
      valid = tokens[tokens >= 0]
      assert np.all(tokens[len(valid):] == -1)  # padding only at the end
      assert full.startswith(data.tokenizer.decode(valid)) and len(valid) == min(
          len(full.encode()), len(tokens))
  words = pairs.load(code_config(f"{packages}/**/*.py", pair_dir, tokenizer="words",
                                 vocab_size=400))
  assert {"Return", "def", "self"} <= set(words.tokenizer.words)  # fitted on both sides
  again = pairs.load(cfg, tokenizer_spec=words.tokenizer.spec)  # cfg says bytes: spec wins
  for split in ("train", "validation"):
    n, a = words.loader(split)
    b = again.loader(split)[1]
    np.testing.assert_array_equal(a(np.arange(n))["pair"], b(np.arange(n))["pair"])
    np.testing.assert_array_equal(a(np.arange(n))["text"], b(np.arange(n))["text"])


DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def digits_folder(root, count=40):
  """count scikit-learn digits as PNG files, each with its caption; returns root, images."""
  from sklearn.datasets import load_digits
  digits = load_digits()
  os.makedirs(root, exist_ok=True)
  pixels = np.round(digits.images[:count] * 255 / 16).astype(np.uint8)
  for i, (image, label) in enumerate(zip(pixels, digits.target)):
    Image.fromarray(image).save(os.path.join(root, f"d{i:03d}.png"))
    with open(os.path.join(root, f"d{i:03d}.txt"), "w") as f:
      f.write(f"a photo of the digit {DIGIT_NAMES[label]}\n")
  return str(root), pixels


def image_config(source, data_dir, **changes):
  return code_config(source, data_dir, **{"name": pairs.IMAGE_TEXT, "eval_split": "test",
                                          "image_size": 16, **changes})


def test_image_text_folder(tmp_path, capfd):
  root, pixels = digits_folder(tmp_path / "digits")
  (tmp_path / "digits" / "noise.png").write_bytes(b"not a png at all")
  (tmp_path / "digits" / "noise.txt").write_text("a photo of static")
  data = pairs.load(image_config(root, str(tmp_path / "tfds")))
  assert "skipped 1 file(s) that could not be read as images" in capfd.readouterr().err
  assert data.sides == ("text", "image")
  (n_train, train_rows), (n_test, test_rows) = data.loader("train"), data.loader("test")
  assert n_train + n_test == 40 and 0 < n_test < n_train
  texts, codes, ids = data.raw("test")
  assert codes is None and len(texts) == n_test
  rows = test_rows(np.arange(n_test))
  assert rows["pair"].shape == (n_test, 16, 16, 3) and rows["pair"].dtype == np.uint8
  assert rows["text"].shape == (n_test, 32)
  for r, (text, rel) in enumerate(zip(texts, ids)):  # each image beside its own caption
    want = images.to_rgb(pixels[int(rel[1:4])][..., None], 16)
    np.testing.assert_array_equal(rows["pair"][r], want)
    tokens = rows["text"][r]
    assert data.tokenizer.decode(tokens[tokens >= 0]) == text[:32]
    assert text.startswith("a photo of the digit ")
  for split, count in (("train", 6), ("test", 2)):  # given splits win over the hash
    digits_folder(tmp_path / "given" / split, count)
  given = pairs.load(image_config(str(tmp_path / "given"), str(tmp_path / "tfds")))
  assert given.loader("train")[0] == 6
  assert sorted(given.raw("test")[2]) == ["test/d000.png", "test/d001.png"]
  os.remove(tmp_path / "digits" / "d007.txt")
  with pytest.raises(DataError, match="1 image.*no caption.*d007.png"):
    pairs.load(image_config(root, str(tmp_path / "tfds")))


with tfds.core.registered.skip_registration():  # read back from files only, like a real one

  class SslJaxTinyCaptions(tfds.core.GeneratorBasedBuilder):
    """A stand-in for coco_captions: several captions per image, nested under "captions"."""
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
          "image/id": tfds.features.Scalar(dtype=np.int64),
          "captions": tfds.features.Sequence({"id": tfds.features.Scalar(dtype=np.int64),
                                              "text": tfds.features.Text()})}))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples(range(0, 6)),
              "val": self._generate_examples(range(6, 9))}

    def _generate_examples(self, numbers):
      for i in numbers:
        png = io.BytesIO()
        Image.new("RGB", (12, 8), (20 * i, 0, 0)).save(png, format="PNG")
        yield i, {"image": png.getvalue(), "image/id": i, "captions": [
            {"id": 2 * i, "text": f"a red box number {i}"}, {"id": 2 * i + 1, "text": "other"}]}


def test_tfds_captioning_dataset_by_name(tmp_path):
  data_dir = str(tmp_path / "tfds")
  SslJaxTinyCaptions(data_dir=data_dir, file_format="array_record").download_and_prepare()
  cfg = image_config("", data_dir, name="ssl_jax_tiny_captions", eval_split="val",
                     text_key="captions/text", image_size=4)
  data = pairs.load(cfg)
  assert data.dataset == "ssl_jax_tiny_captions/1.0.0" and data.sides == ("text", "image")
  texts, _, _ = data.raw("val")
  assert sorted(texts) == [f"a red box number {i}" for i in (6, 7, 8)]  # the first caption
  count, load_rows = data.loader("val")
  rows = load_rows(np.arange(count))
  assert rows["pair"].shape == (3, 4, 4, 3) and rows["text"].shape == (3, 32)
  red = {int(t.split()[-1]) * 20 for t in texts}
  assert {int(img[0, 0, 0]) for img in rows["pair"]} == red  # rows stay paired
  with pytest.raises(ConfigError, match="text_key='caption'.*captions"):
    pairs.load(image_config("", data_dir, name="ssl_jax_tiny_captions", eval_split="val",
                            text_key="caption"))
  with pytest.raises(DataError, match="tfds build coco_captions --file_format=array_record"):
    pairs.load(image_config("", data_dir, name="coco_captions", text_key="captions/text"))
