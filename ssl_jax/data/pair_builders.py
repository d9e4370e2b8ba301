"""TFDS builders of paired examples for two-tower contrastive pretraining (CLIP, SigLIP).

CodePairs       (docstring, code) of every documented function in a tree of Python files:
                the running interpreter's standard library by default, or any glob.
ImageTextFolder a folder of images, each beside a same-named .txt caption.

Both write array_record without TensorFlow. Their config names hash what they were built
from, so two trees (or a changed tree) never share a prepared dataset.
"""
import ast
import copy
import hashlib
import inspect
import os
import sys
import warnings
import zlib

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image
from tqdm import tqdm

from ssl_jax.data.image_builders import IMAGE_EXTENSIONS, png_bytes
from ssl_jax.data.text_builder import (STDLIB, _read_text, corpus_config, source_files,
                                       split_files)
from ssl_jax.errors import DataError

MIN_WORDS = 3  # "Return self." or "Helper." says too little to match against code


def first_paragraph(docstring: str) -> str:
  """The docstring's summary: its first paragraph, on one line."""
  lines = []
  for line in inspect.cleandoc(docstring).split("\n"):
    if not line.strip():
      if lines:
        break
      continue
    lines.append(line)
  return " ".join(" ".join(lines).split())


def _is_trivial(statement) -> bool:
  return isinstance(statement, ast.Pass) or (
      isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
      and statement.value.value is Ellipsis)


def _byte_slice(line: str, start: int, end: int | None = None) -> str:
  """ast's column offsets count UTF-8 bytes, not characters."""
  return line.encode("utf-8")[start:end].decode("utf-8", errors="replace")


def _code_without_docstring(node, lines: list[str]) -> str:
  """The function's source (decorators included) without its docstring, dedented."""
  doc = node.body[0]
  before = _byte_slice(lines[doc.lineno - 1], 0, doc.col_offset)
  after = _byte_slice(lines[doc.end_lineno - 1], doc.end_col_offset).strip()
  if before.strip() or (after and not after.startswith("#")):
    # The docstring shares a line with other code (`def f(): "doc"`): rebuild the source.
    bare = copy.copy(node)
    bare.body = node.body[1:]
    return ast.unparse(bare)
  start = min([node.lineno] + [d.lineno for d in node.decorator_list])
  kept = lines[start - 1:doc.lineno - 1] + lines[doc.end_lineno:node.end_lineno]
  # Dedent by the def's own indentation: textwrap.dedent would keep it all whenever a
  # multi-line string in the body has lines at column 0.
  indent = lines[start - 1][:len(lines[start - 1]) - len(lines[start - 1].lstrip())]
  kept = [line[len(indent):] if line.startswith(indent) else line for line in kept]
  return "\n".join(kept).strip("\n")


def _statements(node):
  """The statements directly inside node, in source order: a def can only be a statement,
  so expressions (most of a tree) are never walked."""
  for field in ("body", "handlers", "orelse", "finalbody", "cases"):
    value = getattr(node, field, None)
    if isinstance(value, list):
      yield from value


def documented_functions(source: str, rel_path: str):
  """(id, summary, code) of each documented function and method in source order, nested
  ones included. Raises SyntaxError (or ValueError) for a file that is not Python."""
  source = source.replace("\r\n", "\n").replace("\r", "\n")
  with warnings.catch_warnings():  # old escape sequences in the stdlib's own tests
    warnings.simplefilter("ignore")
    tree = ast.parse(source)
  lines = source.split("\n")  # as ast counts lines: a form feed does not end one

  def visit(node, prefix):
    for child in _statements(node):
      if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
        qualname = prefix + child.name
        docstring = ast.get_docstring(child, clean=False)
        body = child.body[1:]
        if docstring and body and not all(_is_trivial(s) for s in body):
          summary = first_paragraph(docstring)
          if len(summary.split()) >= MIN_WORDS:
            code = _code_without_docstring(child, lines)
            yield f"{rel_path}:{qualname}:{child.lineno}", summary, code
        yield from visit(child, qualname + ".<locals>.")
      elif isinstance(child, ast.ClassDef):
        yield from visit(child, prefix + child.name + ".")
      else:
        yield from visit(child, prefix)

  yield from visit(tree, "")


def _normalised(code: str) -> str:
  return " ".join(code.split())


class CodePairs(tfds.core.GeneratorBasedBuilder):
  """{id, text, code}: a function's docstring summary and its code without the docstring.

  Files are split into train and validation exactly as the LocalText corpus splits them,
  so every function of a file is on one side. A pair whose code (up to whitespace) or text
  repeats an earlier kept pair is dropped, files taken in sorted order: no code and no
  docstring is in both splits, or twice in one.
  """
  VERSION = tfds.core.Version("1.0.0")

  def __init__(self, *, source: str = STDLIB, data_dir: str | None = None):
    root, rel = source_files(source)
    rel = [p for p in rel if p.endswith(".py")]
    if not rel:
      raise DataError(
          f"The code corpus {source!r} matched no Python (.py) files. Point "
          "--config.data.source at a glob of Python files, e.g. "
          "--config.data.source='~/src/project/**/*.py' (or 'stdlib', the default).")
    self._root, self._rel, self._source = root, rel, source
    super().__init__(config=corpus_config(source, root, rel), data_dir=data_dir,
                     file_format="array_record")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="Docstring summaries paired with their functions' code.",
        features=tfds.features.FeaturesDict({
            "id": tfds.features.Text(), "text": tfds.features.Text(),
            "code": tfds.features.Text()}))

  def _split_generators(self, dl_manager):
    pairs = self._pairs_by_file()
    splits = split_files(sorted(pairs))
    out = {}
    for split, files in splits.items():
      examples = [pair for rel in files for pair in pairs[rel]]
      if not examples:
        raise DataError(
            f"The code corpus {self._source!r} ({len(self._rel)} Python files under "
            f"{self._root}) gave no {split!r} pairs: it needs functions whose docstring "
            f"starts with at least {MIN_WORDS} words and whose body is more than `pass`, in "
            "files of both splits (about 1 file in 20 validates). Point "
            "--config.data.source at a glob of documented Python files, e.g. "
            "--config.data.source='~/src/project/**/*.py'.")
      out[split] = self._generate_examples(examples)
    return out

  def _pairs_by_file(self) -> dict[str, list[tuple[str, str, str]]]:
    """rel path -> its kept pairs, for every non-empty UTF-8 file (LocalText's files).

    Deduplication runs over all files in sorted order, before the split."""
    seen_code, seen_text, pairs, skipped = set(), set(), {}, []
    for rel in tqdm(self._rel, desc="reading documented functions", mininterval=2, leave=False):
      source = _read_text(os.path.join(self._root, rel))
      if source is None:
        skipped.append((rel, "not UTF-8"))
        continue
      if not source:
        continue  # an empty file is fine and simply has no functions
      pairs[rel] = []  # in the split as in LocalText's, even if it does not parse
      try:
        found = list(documented_functions(source, rel))
      except (SyntaxError, ValueError, RecursionError) as e:
        skipped.append((rel, type(e).__name__))
        continue
      for key, text, code in found:
        code_key = _normalised(code)
        if code_key in seen_code or text in seen_text:
          continue
        seen_code.add(code_key)
        seen_text.add(text)
        pairs[rel].append((key, text, code))
    if skipped:  # the stdlib's tests hold a few files that are not valid Python on purpose
      rel, why = skipped[0]
      print(f"warning: skipped {len(skipped)} file(s) that could not be read or parsed as "
            f"Python (e.g. {rel}: {why}) in {self._root}.", file=sys.stderr, flush=True)
    return pairs

  def _generate_examples(self, examples):
    for key, text, code in examples:
      yield key, {"id": key, "text": text, "code": code}


def caption_path(image_rel: str) -> str:
  return os.path.splitext(image_rel)[0] + ".txt"


def image_text_listing(root: str) -> tuple[dict[str, list[str]], dict[str, int]]:
  """(split -> sorted image paths, relative path -> size of every image and .txt file).

  `root/train/...` and `root/test/...` give the splits; otherwise about 1 image in 10 (by a
  hash of its path) is a test image, and at least one when there are two or more.
  """
  if not os.path.isdir(root):
    raise DataError(f"The image-text folder {root!r} does not exist. Point "
                    "--config.data.source at a folder of images, each beside a same-named "
                    ".txt caption (cat.png + cat.txt).")
  sizes = {}
  for dirpath, _, names in os.walk(root):
    for name in names:
      if name.lower().endswith(IMAGE_EXTENSIONS + (".txt",)):
        path = os.path.join(dirpath, name)
        sizes[os.path.relpath(path, root)] = os.path.getsize(path)
  images = sorted(p for p in sizes if p.lower().endswith(IMAGE_EXTENSIONS))
  if os.path.isdir(os.path.join(root, "train")) and os.path.isdir(os.path.join(root, "test")):
    splits = {s: [p for p in images if p.startswith(s + os.sep)] for s in ("train", "test")}
  else:
    crc = lambda p: zlib.crc32(p.encode())  # noqa: E731
    test = [p for p in images if crc(p) % 10 == 0]
    if not test and len(images) > 1:
      test = [min(images, key=crc)]
    splits = {"train": [p for p in images if p not in set(test)], "test": test}
  if not splits["train"] or not splits["test"]:
    raise DataError(
        f"The image-text folder {root!r} has {len(splits['train'])}/{len(splits['test'])} "
        "train/test images; it needs images in both splits (at least 2 images, or "
        "root/train and root/test both holding images), each beside a .txt caption.")
  return splits, sizes


class ImageTextFolder(tfds.core.GeneratorBasedBuilder):
  """{id, image, text}: each image (re-encoded as RGB PNG) with its caption file's text."""
  VERSION = tfds.core.Version("1.0.0")

  def __init__(self, *, root: str, data_dir: str | None = None):
    self._root = os.path.abspath(os.path.expanduser(root))
    self._splits, sizes = image_text_listing(self._root)
    listing = "\n".join([self._root] + [f"{p}:{n}" for p, n in sorted(sizes.items())])
    digest = hashlib.sha1(listing.encode()).hexdigest()[:12]
    config = tfds.core.BuilderConfig(name=f"{os.path.basename(self._root)}_{digest}",
                                     description=f"captioned images under {self._root}")
    super().__init__(config=config, data_dir=data_dir, file_format="array_record")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="Local images, each with a same-named .txt caption.",
        features=tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
            "text": tfds.features.Text()}))

  def _split_generators(self, dl_manager):
    captions, bad = {}, []
    for rel in (p for files in self._splits.values() for p in files):
      path = os.path.join(self._root, caption_path(rel))
      text = _read_text(path) if os.path.isfile(path) else None
      if text and text.strip():
        captions[rel] = " ".join(text.split())
      else:
        bad.append(rel)
    if bad:
      raise DataError(
          f"{len(bad)} image(s) in {self._root} have no caption: a missing, empty or "
          f"non-UTF-8 .txt file beside them (e.g. {', '.join(bad[:5])}). Give each image a "
          "same-named caption file (cat.png + cat.txt) or remove the image.")
    return {split: self._generate_examples(files, captions, split)
            for split, files in self._splits.items()}

  def _generate_examples(self, files, captions, split):
    unreadable = []
    for rel in files:
      try:
        with Image.open(os.path.join(self._root, rel)) as image:
          rgb = np.asarray(image.convert("RGB"))
      except (OSError, ValueError):  # PIL's errors for corrupt or truncated files
        unreadable.append(rel)
        continue
      yield rel, {"id": rel, "image": png_bytes(rgb), "text": captions[rel]}
    if len(unreadable) == len(files):
      raise DataError(
          f"None of the {len(files)} images of the {split!r} split of {self._root} could be "
          f"read (e.g. {unreadable[0]}): they are corrupt, truncated or not images.")
    if unreadable:
      print(f"warning: skipped {len(unreadable)} file(s) that could not be read as images "
            f"(e.g. {unreadable[0]}) in {self._root}.", file=sys.stderr, flush=True)
