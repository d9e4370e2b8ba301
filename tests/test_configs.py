"""Configs: one shared base, imported as a package; no config or test edits sys.path."""
import ast
import glob
import os
import subprocess
import sys

import pytest

from conftest import REPO

CONFIG_FILES = sorted(p for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
                      if os.path.basename(p) not in ("__init__.py", "common.py"))

# Loads a config the way ssl_jax.main does (ml_collections' --config flag, by path).
_LOAD_BY_PATH = """
import sys
from absl import flags
from ml_collections import config_flags
config = config_flags.DEFINE_config_file("config")
flags.FLAGS(["load", "--config=" + sys.argv[1]])
print(config.value.objective, config.value.model.matmul)
"""


@pytest.mark.parametrize("path", CONFIG_FILES, ids=os.path.basename)
def test_config_loads_by_absolute_path_from_another_directory(path, tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  out = subprocess.run([sys.executable, "-c", _LOAD_BY_PATH, path], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split()[1] == "auto"


def _sys_path_edits(path):
  """Calls like sys.path.insert(...) / sys.path.append(...) in a Python file."""
  tree = ast.parse(open(path).read())
  return [node.lineno for node in ast.walk(tree)
          if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
          and ast.unparse(node.func.value) == "sys.path"]


@pytest.mark.parametrize("folder", ["configs", "tests"])
def test_no_sys_path_edits(folder):
  files = glob.glob(os.path.join(REPO, folder, "*.py"))
  assert files
  edits = {os.path.basename(f): lines for f in files if (lines := _sys_path_edits(f))}
  assert not edits


def test_every_config_builds_on_the_common_base():
  for path in CONFIG_FILES:
    source = open(path).read()
    assert "from configs import" in source, path
