"""Every path the project reads or writes: a local path or an object-store URL (gs://).

One abstraction, etils.epath (which Orbax and TFDS use too), behind a few functions.
Local files keep their POSIX guarantees (atomic rename, append). An object store has
neither, but replacing a whole object is atomic: readers see the old object or the new
one. So files that change (run.json, metrics.jsonl) are written whole (`write_atomic`).

Credentials come from the environment, as the Google Cloud libraries find them
(application default credentials, the VM's service account); nothing here handles keys.
"""
import os
import tempfile

import fsspec.config
from etils import epath

from ssl_jax.errors import ConfigError

SCHEMES = ("gs",)  # the object stores this project tests (against a local GCS emulator)

# gcsfs caches directory listings for the life of a process, but Orbax writes its arrays
# through tensorstore, which gcsfs does not see: a cached listing would miss new checkpoints.
# Applies to every gs filesystem made from here on (fsspec merges this into their options).
fsspec.config.conf.setdefault("gs", {}).setdefault("use_listings_cache", False)


def is_url(path) -> bool:
  return "://" in str(path)


def resolve(what: str, path) -> str:
  """An absolute local path, or a normalised URL of a supported scheme; ConfigError else.

  `what` names the flag or field in the message (e.g. "--workdir").
  """
  path = str(path)
  if not is_url(path):
    return os.path.abspath(os.path.expanduser(path))
  scheme, rest = path.split("://", 1)
  if scheme not in SCHEMES:
    raise ConfigError(
        f"{what}={path}: {scheme}:// is not a supported storage scheme. Use a local or "
        f"mounted path, or {' or '.join(s + '://BUCKET/PATH' for s in SCHEMES)}.")
  rest = rest.strip("/")
  if not rest:
    raise ConfigError(f"{what}={path} names no bucket; use {scheme}://BUCKET/PATH.")
  return f"{scheme}://{rest}"


def join(base, *parts) -> str:
  if is_url(base):
    return "/".join([str(base).rstrip("/"), *(str(p).strip("/") for p in parts)])
  return os.path.join(str(base), *map(str, parts))


def basename(path) -> str:
  return str(path).rstrip("/").rsplit("/", 1)[-1]


def exists(path) -> bool:
  return epath.Path(path).exists()


def isdir(path) -> bool:
  return epath.Path(path).is_dir()


def listdir(path) -> list[str]:
  """Names in a directory (an object-store prefix); [] if there is none."""
  try:
    return sorted(p.name for p in epath.Path(path).iterdir())
  except (FileNotFoundError, NotADirectoryError):
    return []


def makedirs(path):
  """Creates a local directory; object stores have no directories to create."""
  if not is_url(path):
    os.makedirs(path, exist_ok=True)


def read_bytes(path) -> bytes:
  return epath.Path(path).read_bytes()


def write_atomic(path, data: bytes | str):
  """Replaces path as a whole: a reader (or a crash) sees the old file or the new one."""
  if isinstance(data, str):
    data = data.encode("utf-8")
  if is_url(path):
    epath.Path(path).write_bytes(data)  # one object upload: atomic by itself
    return
  fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                             dir=os.path.dirname(path) or ".")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())  # so a crash soon after cannot leave an empty file
    os.chmod(tmp, 0o644)  # mkstemp makes it private
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def rename(src, dst):
  """Local: atomic. Object store: copied, then the source deleted (a tree for a prefix)."""
  if not is_url(src):
    os.replace(src, dst)
    return
  filesystem(src).mv(str(src), str(dst), recursive=True)


def remove(path):
  if is_url(path):
    filesystem(path).rm(str(path))
  else:
    os.remove(path)


def filesystem(url):
  """The fsspec filesystem behind a URL (gcsfs for gs://), for what epath does not offer."""
  import fsspec
  return fsspec.filesystem(str(url).split("://", 1)[0])


def check_url(what: str, url: str, write: bool):
  """ConfigError, naming the cause, unless url's bucket exists and can be read (and written).

  Checks, in order: credentials (gcsfs falls back to anonymous access when it finds none,
  and the first write would then fail deep inside a save), the bucket, then, for a place
  that will be written, a probe object written and deleted again.
  """
  bucket = url.split("://", 1)[1].split("/", 1)[0]
  fs = filesystem(url)
  if (getattr(getattr(fs, "credentials", None), "method", None) == "anon"
      and os.environ.get("FSSPEC_GS_TOKEN") != "anon"):
    raise ConfigError(
        f"{what}={url}: no Google Cloud credentials were found. Run `gcloud auth "
        "application-default login`, set GOOGLE_APPLICATION_CREDENTIALS to a service-account "
        "key file, or run on a VM whose service account may use the bucket "
        "(FSSPEC_GS_TOKEN=anon asks for anonymous access on purpose).")
  try:
    if not fs.exists(bucket):
      raise ConfigError(f"{what}={url}: the bucket gs://{bucket} does not exist (or this "
                        "account may not see it); create it or fix the name.")
  except OSError as e:
    raise ConfigError(f"{what}={url}: cannot reach the bucket gs://{bucket}: {_brief(e)}") from e
  if not write:
    return
  import socket
  probe = join(url, f".write_check.{socket.gethostname()}.{os.getpid()}")
  try:
    fs.pipe_file(probe, b"")
    fs.rm(probe)
  except OSError as e:
    raise ConfigError(f"{what}={url} cannot be written ({_brief(e)}): the bucket is read-only "
                      "for this account; choose another location or grant it write access "
                      "(roles/storage.objectAdmin).") from e


def _brief(error: Exception) -> str:
  lines = [line for line in str(error).splitlines() if line.strip()]
  return lines[-1][:200] if lines else type(error).__name__
