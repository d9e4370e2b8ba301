"""DIR/run.json: everything needed to rerun a result (config, overrides, code, libraries, hardware)."""
import importlib.metadata
import json
import os
import platform
import subprocess
import sys

import jax

from ssl_jax import host, storage

_LIBRARIES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "tensorflow-datasets",
              "array_record", "numpy", "ml_collections", "sentencepiece")


def _git(*args) -> str | None:
  here = os.path.dirname(os.path.abspath(__file__))
  try:
    return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10,
                          check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None


def collect(config, overrides: dict) -> dict:
  versions = {}
  for lib in _LIBRARIES:
    try:
      versions[lib] = importlib.metadata.version(lib)
    except importlib.metadata.PackageNotFoundError:
      versions[lib] = None
  status = _git("status", "--porcelain", "--untracked-files=no")
  return {
      "config": config.to_dict(),
      "overrides": overrides,
      "command": sys.argv,
      "git_commit": _git("rev-parse", "HEAD"),
      "git_dirty": bool(status) if status is not None else None,
      "versions": versions,
      "python": platform.python_version(),
      "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
      "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES", ""),  # see hugepages.py
      "device_kind": jax.devices()[0].device_kind,
      "platform": jax.devices()[0].platform,
      "device_count": jax.device_count(),
      "local_device_count": jax.local_device_count(),
      "process_count": jax.process_count(),
      "host": platform.node(),
      "cpu": host.describe(),  # model, cores, AVX2/AVX-512/bf16/AMX: bit-exact reruns need it
  }


def write(path: str, info: dict):
  """Atomically: a reader sees the old file or the new one, never a part (storage.py)."""
  storage.write_atomic(path, json.dumps(info, indent=2, sort_keys=True, default=str))


class Unreadable(ValueError):
  """run.json exists but does not hold a recorded config."""


def read(path: str) -> dict:
  """The recorded run info; Unreadable (saying what is wrong) if the file is damaged."""
  data = storage.read_bytes(path)
  if not data.strip():
    raise Unreadable("it is empty")
  try:
    info = json.loads(data)
  except UnicodeDecodeError:
    raise Unreadable("it is not text") from None
  except json.JSONDecodeError as e:
    raise Unreadable(f"it is not valid JSON ({e})") from None
  if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
    raise Unreadable("it holds no recorded config")
  return info


def _flatten(tree: dict, prefix: str = "") -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def config_diff(recorded: dict, current: dict) -> list[str]:
  """Lines 'field: recorded -> current' for every field that differs (JSON-normalised)."""
  from ssl_jax.config_check import ADDED_FIELDS
  new = _flatten(json.loads(json.dumps(current, default=str)))
  # A field added after a run was recorded had its default there.
  old = {**{k: v for k, v in ADDED_FIELDS.items() if k in new},
         **_flatten(json.loads(json.dumps(recorded, default=str)))}
  missing = object()
  return [f"  {k}: {old.get(k, '(absent)')!r} -> {new.get(k, '(absent)')!r}"
          for k in sorted(set(old) | set(new)) if old.get(k, missing) != new.get(k, missing)]
