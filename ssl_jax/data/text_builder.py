"""TFDS builder turning local text files into array_record train/validation splits.

`source="stdlib"` (the default) is the running interpreter's standard library: tens of
MB of real Python that every install has. Any other value is a glob of text files. Files
are split deterministically by a hash of their relative path (about 1 in 20 validates).
"""
import glob
import hashlib
import os
import sys
import zlib

import tensorflow_datasets as tfds

from ssl_jax.errors import DataError

STDLIB = "stdlib"


def source_files(source: str) -> tuple[str, list[str]]:
  """(root, sorted relative paths) of the corpus `source` names."""
  if source == STDLIB:
    root = os.path.dirname(os.__file__)
    paths = glob.glob(os.path.join(root, "**", "*.py"), recursive=True)
    paths = [p for p in paths if "site-packages" not in p and "dist-packages" not in p]
  else:
    pattern = os.path.expanduser(source)
    paths = [p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]
    root = os.path.commonpath(paths) if paths else os.path.dirname(pattern)
    if len(paths) == 1:
      root = os.path.dirname(paths[0])
  rel = sorted(os.path.relpath(p, root) for p in paths)
  return root, rel


def corpus_config(source: str, root: str, rel_paths: list[str]):
  """The builder config of a corpus: named after a hash of its source, root and file list,
  so two corpora (or one whose files changed) are prepared apart."""
  digest = hashlib.sha1(("\n".join([source, root] + rel_paths)).encode()).hexdigest()[:12]
  name = ("stdlib" if source == STDLIB else "files") + "_" + digest
  return tfds.core.BuilderConfig(name=name, description=f"{source} at {root}")


def is_validation(rel_path: str) -> bool:
  return zlib.crc32(rel_path.encode()) % 20 == 0


def split_files(rel_paths: list[str]) -> dict[str, list[str]]:
  val = [p for p in rel_paths if is_validation(p)]
  train = [p for p in rel_paths if not is_validation(p)]
  if not val and len(train) > 1:  # tiny corpora: still validate on one file
    val = [min(train, key=lambda p: zlib.crc32(p.encode()))]
    train = [p for p in train if p != val[0]]
  return {"train": train, "validation": val}


class LocalText(tfds.core.GeneratorBasedBuilder):
  """Documents {path, text} from local text files."""
  VERSION = tfds.core.Version("1.0.0")

  def __init__(self, *, source: str = STDLIB, data_dir: str | None = None):
    root, rel = source_files(source)
    if len(rel) < 2:
      raise DataError(
          f"The text corpus {source!r} matched {len(rel)} file(s); at least 2 are needed "
          "(one for validation). Point --config.data.source at a glob of text files, e.g. "
          "--config.data.source='~/corpus/**/*.txt'.")
    self._root, self._rel, self._source = root, rel, source
    super().__init__(config=corpus_config(source, root, rel), data_dir=data_dir,
                     file_format="array_record")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="Local text files, one example per file.",
        features=tfds.features.FeaturesDict(
            {"path": tfds.features.Text(), "text": tfds.features.Text()}))

  def _split_generators(self, dl_manager):
    usable = self._usable_files()
    return {split: self._generate_examples(files) for split, files in split_files(usable).items()}

  def _usable_files(self) -> list[str]:
    """The files holding UTF-8 text; says how many others were skipped, and fails (DataError)
    if fewer than 2 are left. Run once, when the corpus is prepared."""
    not_text, empty = [], []
    for rel in self._rel:
      text = _read_text(os.path.join(self._root, rel))
      if text is None:
        not_text.append(rel)
      elif not text:
        empty.append(rel)
    usable = [rel for rel in self._rel if rel not in set(not_text) | set(empty)]
    if len(usable) < 2:
      raise DataError(
          f"The text corpus {self._source!r} has {len(usable)} usable file(s) of {len(self._rel)}: "
          f"{len(not_text)} are not UTF-8 text (binary, or another encoding such as latin-1) and "
          f"{len(empty)} are empty; at least 2 files of UTF-8 text are needed. Convert the files "
          "(e.g. `iconv -f latin1 -t utf-8`) or point --config.data.source at text files.")
    if not_text:  # a few stdlib test files are deliberately not UTF-8
      print(f"warning: skipped {len(not_text)} file(s) that are not UTF-8 text (e.g. "
            f"{not_text[0]}) in {self._root}.", file=sys.stderr, flush=True)
    return usable

  def _generate_examples(self, files):
    for rel in files:
      text = _read_text(os.path.join(self._root, rel))
      if text:
        yield rel, {"path": rel, "text": text}


def _read_text(path: str) -> str | None:
  """The file's text, or None if it is not UTF-8 text (undecodable, or binary with NULs)."""
  with open(path, "rb") as f:
    raw = f.read()
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError:
    return None
  return None if "\x00" in text else text
