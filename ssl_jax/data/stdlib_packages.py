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
boundaries. Files, not snippets, are split between train and test, so no file's code appears
on both sides: in each class, taken in hash order, a file goes to test if it still fits in
TEST_SHARE of the class's snippets, so every class tests on the same share of its code (1 in
5 files left a class of a few large files a few dozen test snippets). Classes are balanced
by capping the snippets per class and split; a class over its cap keeps snippets taken in
turn from each of its files (hash order), so the kept ones span all its files.
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
TEST_SHARE = 0.25
# On the stdlib of Python 3.11 every class can fill these caps (the smallest, lib2to3 and
# multiprocessing, hold about 1,030 snippets): 6,000 train and 2,000 test snippets.
MAX_PER_CLASS = {"train": 750, "test": 250}


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


def _order(key: str) -> int:
  """A fixed pseudo-random rank: the same on every machine and run."""
  return zlib.crc32(key.encode())


def split_files(counts: dict[str, int]) -> dict[str, list[str]]:
  """{"train": files, "test": files} of one class, given each file's number of snippets."""
  target = TEST_SHARE * sum(counts.values())
  test, held = [], 0
  for f in sorted(counts, key=_order):
    if 0 < counts[f] and held + counts[f] <= target:
      test.append(f)
      held += counts[f]
  if not test and any(counts.values()):  # a tiny class: still test on its smallest file
    test = [min((f for f in counts if counts[f]), key=lambda f: (counts[f], _order(f)))]
  held_out = set(test)
  return {"test": sorted(test),
          "train": [f for f in sorted(counts) if counts[f] and f not in held_out]}


def spread(pieces: list[tuple[str, int, str]], cap: int) -> list[tuple[str, int, str]]:
  """At most cap (file, index, text) snippets, taken round by round, one from each file per
  round (files and each file's snippets in hash order); in file order."""
  rank = collections.Counter()
  ranked = []
  for piece in sorted(pieces, key=lambda p: _order(f"{p[0]}:{p[1]}")):
    ranked.append((rank[piece[0]], _order(piece[0]), piece))
    rank[piece[0]] += 1
  return sorted(piece for _, _, piece in sorted(ranked)[:cap])


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

  def _snippets_of(self, cls: str) -> dict[str, list[str]]:
    """{file: its snippets} of the class's files over MIN_BYTES that decode as UTF-8."""
    out = {}
    for rel in self._files[cls]:
      path = os.path.join(self._root, rel)
      if os.path.getsize(path) <= MIN_BYTES:
        continue
      try:
        with open(path, encoding="utf-8") as f:
          out[rel] = list(snippets(f.read()))
      except UnicodeDecodeError:
        continue
    return out

  def _generate_examples(self, split: str):
    for label, cls in enumerate(self._classes):
      by_file = self._snippets_of(cls)
      files = split_files({f: len(p) for f, p in by_file.items()})[split]
      pieces = [(f, i, text) for f in files for i, text in enumerate(by_file[f])]
      for rel, i, text in spread(pieces, MAX_PER_CLASS[split]):
        yield f"{rel}:{i}", {"text": text, "label": label, "path": rel}


class StdlibPackages(_PackageSnippets):
  """The standard library's packages (name, version and content fixed: results refer to them)."""
  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {
      "1.0.0": "300 train and 60 test snippets per class, 1 in 5 files to test.",
      "2.0.0": "750 train and 250 test snippets per class (2,000 test in all), a quarter of "
               "each class's snippets to test, capped classes sampled over all their files.",
  }
  DESCRIPTION = "Python standard-library snippets labelled by package."

  def __init__(self, *, data_dir: str | None = None):
    root, rel = source_files("stdlib")
    super().__init__(root, rel, choose_classes(root, rel), data_dir=data_dir)


class PythonPackages(_PackageSnippets):
  """The packages under a folder; one builder config per folder (resolved path + files)."""
  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = StdlibPackages.RELEASE_NOTES  # the same generator, so the same changes
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
