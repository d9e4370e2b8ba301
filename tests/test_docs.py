"""The documents cite only what the repository holds: every repository path in README.md,
docs/*.md, benchmarks/*.md and the configs' docstrings names a tracked file or an existing
folder, and every `python -m ssl_jax.X` names a runnable module."""
import ast
import glob
import os
import re
import subprocess

import pytest

from conftest import REPO

ROOTS = ("ssl_jax", "configs", "benchmarks", "launch", "tests", "docs")
# A path token: starts at one of the roots (not inside a longer path or a URL) and runs
# over path characters; trailing punctuation is stripped afterwards.
PATH_RE = re.compile(r"(?<![\w/.~:-])((?:%s)/[\w./*-]*)" % "|".join(ROOTS))
MODULE_RE = re.compile(r"python -m (ssl_jax(?:\.\w+)*)")
# Placeholders the documents use for "any file of this kind".
PLACEHOLDERS = {"NAME", "METHOD_DATA", "METHOD", "DATA", "STEP", "DIR"}


def tracked_files():
  try:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                         check=True).stdout.decode()
    files = {f for f in out.split("\0") if f}
    if files:
      return files
  except (OSError, subprocess.CalledProcessError):
    pass
  return {os.path.relpath(os.path.join(d, f), REPO)
          for d, _, names in os.walk(REPO) for f in names}


def documents():
  """(name, text) of every scanned document."""
  paths = [os.path.join(REPO, "README.md")]
  paths += sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))
  paths += sorted(glob.glob(os.path.join(REPO, "benchmarks", "*.md")))
  docs = [(os.path.relpath(p, REPO), open(p, encoding="utf-8").read()) for p in paths]
  for path in sorted(glob.glob(os.path.join(REPO, "configs", "*.py"))):
    docstring = ast.get_docstring(ast.parse(open(path, encoding="utf-8").read()))
    if docstring:
      docs.append((os.path.relpath(path, REPO) + " (docstring)", docstring))
  return docs


def cited_paths(text):
  """Repository paths in `text`: those ending in a file extension, and those naming a folder."""
  for match in PATH_RE.finditer(text):
    token = match.group(1).rstrip(".,;:)")
    if "*" in token or any(part.split(".")[0] in PLACEHOLDERS for part in token.split("/")):
      continue
    yield token


def missing_paths(text, files):
  folders = {os.path.dirname(f) for f in files}
  folders |= {"/".join(f.split("/")[:i]) for f in folders for i in range(1, f.count("/") + 1)}
  missing = []
  for token in cited_paths(text):
    path = token.rstrip("/")
    if token.endswith("/"):
      ok = path in folders
    elif re.search(r"\.\w+$", os.path.basename(path)):
      ok = path in files
    else:
      ok = path in files or path in folders
    if not ok:
      missing.append(token)
  return missing


def missing_modules(text, files):
  missing = []
  for module in MODULE_RE.findall(text):
    base = module.replace(".", "/")
    if not ({base + ".py", base + "/__main__.py"} & files):
      missing.append(module)
  return missing


def test_scanner_finds_a_bogus_path():
  files = tracked_files()
  text = ("See `ssl_jax/no_such_module.py`, configs/gone.py and ssl_jax/nowhere/ "
          "but not configs/NAME.py; run python -m ssl_jax.not_a_command.")
  assert missing_paths(text, files) == [
      "ssl_jax/no_such_module.py", "configs/gone.py", "ssl_jax/nowhere/"]
  assert missing_modules(text, files) == ["ssl_jax.not_a_command"]
  assert missing_paths("`ssl_jax/train.py`, ssl_jax/models/ and benchmarks/NOTES.md.", files) == []


@pytest.mark.parametrize("name,text", documents(), ids=lambda v: v if "\n" not in v else "")
def test_documents_cite_existing_files(name, text):
  files = tracked_files()
  assert missing_paths(text, files) == [], f"{name} cites paths not in the repository"
  assert missing_modules(text, files) == [], f"{name} runs modules that do not exist"
