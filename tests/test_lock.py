"""requirements.lock sets up a clone anywhere: exact pins with hashes, no local paths."""
import os
import re

import pytest

from conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def _requirements():
  """(name, version, hashes) per requirement, joining the backslash-continued lines."""
  text = open(os.path.join(REPO, "requirements.lock")).read().replace("\\\n", " ")
  for line in text.splitlines():
    line = line.split("#", 1)[0].strip()
    if line:
      yield line


def _name(requirement):
  return re.split(r"[=<>!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_lock_has_no_local_paths_and_pins_every_package_with_hashes():
  for line in _requirements():
    assert not line.startswith(("-e", "--editable", "/", ".", "file:")), line
    assert "file://" not in line and " @ " not in line, line
    assert re.match(r"^[A-Za-z0-9_.-]+==[^ ]+ ", line), f"not pinned to one version: {line}"
    assert "--hash=sha256:" in line, f"no hash: {line}"


def test_lock_covers_every_dependency_and_build_requirement():
  project = tomllib.load(open(os.path.join(REPO, "pyproject.toml"), "rb"))
  wanted = (project["project"]["dependencies"] + project["project"]["optional-dependencies"]["test"]
            + project["build-system"]["requires"])
  locked = {_name(line) for line in _requirements()}
  missing = {_name(r) for r in wanted} - locked
  assert not missing, f"in pyproject.toml but not in requirements.lock: {missing}"
