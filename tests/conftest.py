"""Shared test setup: 8 CPU devices, one compilation cache per run, a tiny real corpus."""
import os
import shutil
import sys
import tempfile

# Must run before JAX initialises its backend.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
CACHE = os.environ.setdefault(
    "SSL_JAX_COMPILATION_CACHE", os.path.join(tempfile.gettempdir(), "ssl_jax_test_jax_cache"))

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_compilation_cache_dir", CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
  """A few real Python modules (the stdlib json package), copied as a small text corpus."""
  out = tmp_path_factory.mktemp("corpus")
  src = os.path.dirname(__import__("json").__file__)
  for name in sorted(os.listdir(src)):
    if name.endswith(".py"):
      shutil.copy(os.path.join(src, name), out / name)
  return str(out)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


def run_cli(module, *args, env=None, timeout=600):
  """Runs `python -m module args` in a subprocess with one CPU device; returns CompletedProcess."""
  import subprocess
  full_env = dict(os.environ)
  full_env.pop("XLA_FLAGS", None)
  full_env.update(env or {})
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=full_env,
                        capture_output=True, text=True, timeout=timeout)
