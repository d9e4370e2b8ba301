"""A labelled text task built from the embedded corpus: which standard-library package does
a snippet of code come from? No download: the running interpreter's stdlib is the source.

The classes are the NUM_CLASSES largest stdlib packages (by bytes) with at least 10 modules
over 1 KB (test suites and the generated codec tables of `encodings` excluded). Each file
is cut into snippets of about SNIPPET_CHARS characters at line boundaries; files, not
snippets, are split between train and test (about 1 in 5 to test), so no file's code
appears on both sides. Classes are balanced by capping the snippets per class.
"""
import collections
import os
import zlib

import tensorflow_datasets as tfds

from ssl_jax.data import prepare
from ssl_jax.data.text_builder import source_files

NUM_CLASSES = 8
SNIPPET_CHARS = 240
MAX_PER_CLASS = {"train": 300, "test": 60}


def _package(rel_path: str):
  parts = rel_path.split(os.sep)
  if len(parts) < 2 or any(p in ("test", "tests", "idle_test") for p in parts):
    return None
  return parts[0]


def choose_classes(root: str, rel_paths: list[str]) -> list[str]:
  modules, size = collections.Counter(), collections.Counter()
  for rel in rel_paths:
    pkg, nbytes = _package(rel), os.path.getsize(os.path.join(root, rel))
    if pkg not in (None, "encodings") and nbytes > 1000:
      modules[pkg] += 1
      size[pkg] += nbytes
  ranked = sorted((p for p in modules if modules[p] >= 10), key=lambda p: (-size[p], p))
  return sorted(ranked[:NUM_CLASSES])


def snippets(text: str):
  """Consecutive chunks of about SNIPPET_CHARS characters, cut at line ends."""
  chunk = []
  length = 0
  for line in text.splitlines(keepends=True):
    chunk.append(line)
    length += len(line)
    if length >= SNIPPET_CHARS:
      piece = "".join(chunk)[:SNIPPET_CHARS]
      if piece.strip():
        yield piece
      chunk, length = [], 0


def split_of(rel_path: str) -> str:
  return "test" if zlib.crc32(rel_path.encode()) % 5 == 0 else "train"


class StdlibPackages(tfds.core.GeneratorBasedBuilder):
  """{text, label, path}: stdlib code snippets labelled by their package."""
  VERSION = tfds.core.Version("1.0.0")

  def __init__(self, *, data_dir: str | None = None):
    self._root, rel = source_files("stdlib")
    self._classes = choose_classes(self._root, rel)
    self._files = {c: [r for r in rel if _package(r) == c] for c in self._classes}
    super().__init__(data_dir=data_dir, file_format="array_record")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="Python standard-library snippets labelled by package.",
        features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=self._classes),
            "path": tfds.features.Text(),
        }))

  def _split_generators(self, dl_manager):
    return {split: self._generate_examples(split) for split in ("train", "test")}

  def _files_of(self, cls: str, split: str) -> list[str]:
    files = [f for f in self._files[cls]
             if os.path.getsize(os.path.join(self._root, f)) > 1000]
    chosen = [f for f in files if split_of(f) == split]
    if not [f for f in files if split_of(f) == "test"]:  # a small package: still test on one
      first = min(files, key=lambda f: zlib.crc32(f.encode()))
      chosen = [first] if split == "test" else [f for f in files if f != first]
    return chosen

  def _generate_examples(self, split: str):
    for label, cls in enumerate(self._classes):
      count = 0
      for rel in self._files_of(cls, split):
        try:
          with open(os.path.join(self._root, rel), encoding="utf-8") as f:
            text = f.read()
        except UnicodeDecodeError:
          continue
        for i, piece in enumerate(snippets(text)):
          if count >= MAX_PER_CLASS[split]:
            break
          yield f"{rel}:{i}", {"text": piece, "label": label, "path": rel}
          count += 1


def load(data_dir: str):
  """(train source, test source, class names), preparing the dataset on first use."""
  builder = prepare.prepared(lambda root: StdlibPackages(data_dir=root), data_dir,
                             "the stdlib-packages task")
  return (builder.as_data_source(split="train"), builder.as_data_source(split="test"),
          builder.info.features["label"].names)
