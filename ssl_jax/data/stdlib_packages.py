"""Labelled text tasks built from trees of Python code: which package does a snippet come
from? No download: the code is already on disk.

StdlibPackages  the running interpreter's standard library (the built-in task).
PythonPackages  any folder DIR: its top-level subfolders are the packages, whatever DIR is.
                DIR = a site-packages folder: the installed distributions; DIR = a package
                such as .../site-packages/sklearn: its subpackages (modules directly in
                DIR belong to no class). Prepared once per DIR: the builder config is
                named after DIR and a hash of its resolved path and of its files' names
                and sizes, so two trees never collide and a changed tree is prepared anew.

The classes are the NUM_CLASSES largest packages (by bytes) with at least MIN_MODULES
modules over MIN_BYTES (test suites excluded; in the stdlib also the generated codec tables
of `encodings`). Each file is cut into snippets of about SNIPPET_CHARS characters at line
boundaries; files, not snippets, are split between train and test (about 1 in 5 to test),
so no file's code appears on both sides. Classes are balanced by capping the snippets per
class.
"""
import collections
import hashlib
import os
import re
import zlib

import tensorflow_datasets as tfds

from ssl_jax.data import prepare
from ssl_jax.data.text_builder import source_files
from ssl_jax.errors import DataError

NUM_CLASSES = 8
MIN_MODULES = 10
MIN_BYTES = 1000
SNIPPET_CHARS = 240
MAX_PER_CLASS = {"train": 300, "test": 60}


def _package(rel_path: str):
  parts = rel_path.split(os.sep)
  if len(parts) < 2 or any(p in ("test", "tests", "idle_test") for p in parts):
    return None
  return parts[0]


def choose_classes(root: str, rel_paths: list[str], excluded=("encodings",)) -> list[str]:
  modules, size = collections.Counter(), collections.Counter()
  for rel in rel_paths:
    pkg, nbytes = _package(rel), os.path.getsize(os.path.join(root, rel))
    if pkg is not None and pkg not in excluded and nbytes > MIN_BYTES:
      modules[pkg] += 1
      size[pkg] += nbytes
  ranked = sorted((p for p in modules if modules[p] >= MIN_MODULES), key=lambda p: (-size[p], p))
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


def python_files(root: str) -> list[str]:
  """Sorted relative paths of the .py files under root (hidden folders skipped)."""
  out = []
  for dirpath, dirnames, files in os.walk(root):
    dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
    out += [os.path.relpath(os.path.join(dirpath, f), root) for f in files if f.endswith(".py")]
  return sorted(out)


class _PackageSnippets(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """{text, label, path}: code snippets under root labelled by their package."""
  DESCRIPTION = ""

  def __init__(self, root: str, rel: list[str], classes: list[str], *, data_dir, config=None):
    self._root, self._classes = root, classes
    self._files = {c: [r for r in rel if _package(r) == c] for c in classes}
    super().__init__(config=config, data_dir=data_dir, file_format="array_record")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.DESCRIPTION,
        features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=self._classes),
            "path": tfds.features.Text(),
        }))

  def _split_generators(self, dl_manager):
    return {split: self._generate_examples(split) for split in ("train", "test")}

  def _files_of(self, cls: str, split: str) -> list[str]:
    files = [f for f in self._files[cls]
             if os.path.getsize(os.path.join(self._root, f)) > MIN_BYTES]
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


class StdlibPackages(_PackageSnippets):
  """The standard library's packages (name, version and content fixed: results refer to them)."""
  VERSION = tfds.core.Version("1.0.0")
  DESCRIPTION = "Python standard-library snippets labelled by package."

  def __init__(self, *, data_dir: str | None = None):
    root, rel = source_files("stdlib")
    super().__init__(root, rel, choose_classes(root, rel), data_dir=data_dir)


class PythonPackages(_PackageSnippets):
  """The packages under a folder; one builder config per folder (resolved path + files)."""
  VERSION = tfds.core.Version("1.0.0")
  DESCRIPTION = "Python code snippets labelled by the package they come from."

  def __init__(self, *, root: str, data_dir: str | None = None):
    root = os.path.realpath(os.path.expanduser(root))
    rel = python_files(root)
    classes = choose_classes(root, rel, excluded=())
    if len(classes) < 2:
      raise DataError(
          f"{root} has {len(classes)} package(s) with at least {MIN_MODULES} modules of over "
          f"{MIN_BYTES} bytes ({', '.join(classes) or 'none'}); a package-classification task "
          "needs at least 2. Point --dataset packages:DIR at a folder whose subfolders are "
          "Python packages, e.g. a site-packages folder or a large package such as "
          ".../site-packages/sklearn.")
    listing = [f"{r}:{os.path.getsize(os.path.join(root, r))}" for r in rel]
    digest = hashlib.sha1("\n".join([root] + listing).encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9_]", "_", os.path.basename(root) or "root") + "_" + digest
    config = tfds.core.BuilderConfig(name=name, description=f"Python packages under {root}")
    super().__init__(root, rel, classes, data_dir=data_dir, config=config)


def _splits(builder):
  return (builder.as_data_source(split="train"), builder.as_data_source(split="test"),
          builder.info.features["label"].names)


def load(data_dir: str):
  """(train source, test source, class names) of the stdlib task, prepared on first use."""
  return _splits(prepare.prepared(lambda root: StdlibPackages(data_dir=root), data_dir,
                                  "the stdlib-packages task"))


def load_tree(data_dir: str, root: str):
  """(train source, test source, class names) of the task over the packages under root."""
  if not os.path.isdir(os.path.expanduser(root)):
    raise DataError(f"{root!r} is not a folder. --dataset packages:DIR needs a folder whose "
                    "subfolders are Python packages (e.g. a site-packages folder).")
  return _splits(prepare.prepared(lambda d: PythonPackages(root=root, data_dir=d), data_dir,
                                  f"the package-classification task of {root}"))
