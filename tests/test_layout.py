"""The flow's boxes import downward only: data, models and objectives never reach up to
tasks, the train loop or the parallel wrappers, nor sideways into each other."""
import ast
import glob
import os

import pytest

from conftest import REPO

_ABOVE = ("ssl_jax.tasks", "ssl_jax.train", "ssl_jax.step", "ssl_jax.parallel",
          "ssl_jax.evaluate", "ssl_jax.main", "ssl_jax.sample", "ssl_jax.sweep")
FORBIDDEN = {
    "data": _ABOVE + ("ssl_jax.models", "ssl_jax.objectives"),
    "models": _ABOVE + ("ssl_jax.data", "ssl_jax.objectives"),
    "objectives": _ABOVE + ("ssl_jax.data", "ssl_jax.models"),
}


def imported_modules(path):
  """Every ssl_jax module a file imports, at any depth of the file (lazy imports too)."""
  out = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      out.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      out.add(node.module)
      out.update(f"{node.module}.{alias.name}" for alias in node.names)
  return {name for name in out if name.startswith("ssl_jax")}


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_upward_or_sideways_imports(folder):
  files = glob.glob(os.path.join(REPO, "ssl_jax", folder, "*.py"))
  assert files
  bad = {}
  for path in files:
    reached = [name for name in imported_modules(path)
               if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[folder])]
    if reached:
      bad[os.path.relpath(path, REPO)] = sorted(reached)
  assert not bad


def test_tasks_take_the_device_axis_from_the_parallel_wrapper():
  """The axis name is make_task's argument; no task re-derives it from config.parallel."""
  for path in glob.glob(os.path.join(REPO, "ssl_jax", "tasks", "*.py")):
    tree = ast.parse(open(path).read())
    reads = [node.lineno for node in ast.walk(tree)
             if (isinstance(node, ast.Attribute) and node.attr == "parallel")
             or (isinstance(node, ast.Constant) and node.value == "parallel")]
    assert not reads and "ssl_jax.parallel" not in imported_modules(path), (path, reads)


def _project_module_names(tree):
  """Local names bound to the project's own modules or their members by imports."""
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update((a.asname or a.name).split(".")[0] for a in node.names
                   if a.name.split(".")[0] in ("ssl_jax", "benchmarks"))
    elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
        "ssl_jax", "benchmarks"):
      names.update(a.asname or a.name for a in node.names)
  return names


def test_no_module_level_switch_is_set_from_outside():
  """Backend and other choices are config fields or arguments: no file assigns to another
  project module's globals (as `gpt.ATTENTION_IMPL = "xla"` once did)."""
  files = (glob.glob(os.path.join(REPO, "ssl_jax", "**", "*.py"), recursive=True)
           + glob.glob(os.path.join(REPO, "benchmarks", "*.py")))
  found = []
  for path in files:
    tree = ast.parse(open(path).read())
    modules = _project_module_names(tree)
    for node in ast.walk(tree):
      targets = (node.targets if isinstance(node, ast.Assign)
                 else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
      found += [f"{os.path.relpath(path, REPO)}:{node.lineno} {ast.unparse(t)}" for t in targets
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                and t.value.id in modules]
  assert not found


def test_ssl_jax_never_imports_torch_or_transformers():
  """Export and import read and write files (safetensors, tokenizer.json); PyTorch and
  transformers are test-only, so a training install needs neither."""
  bad = {}
  for path in glob.glob(os.path.join(REPO, "ssl_jax", "**", "*.py"), recursive=True):
    tree = ast.parse(open(path).read())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module}
    if names & {"torch", "transformers"}:
      bad[os.path.relpath(path, REPO)] = sorted(names & {"torch", "transformers"})
  assert not bad


def test_importing_export_defines_no_flags():
  """init_from and the tests import ssl_jax.export beside main and evaluate, whose flags
  share names (--workdir): the export command defines its own only when it runs."""
  from absl import flags
  import ssl_jax.export  # noqa: F401
  assert "out" not in flags.FLAGS and "step" not in flags.FLAGS
