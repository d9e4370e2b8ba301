"""2 MiB pages for XLA:CPU's step buffers: the commands that train or evaluate re-exec for them.

XLA:CPU mallocs each step's temporaries (313 MB for a 4-layer, width-256 GPT at batch
8 x 256) and frees them after the step; glibc maps blocks that large fresh from the kernel
every time, so every 4 KiB page faults in again: 77k page faults a step. glibc's
`glibc.malloc.hugetlb=1` tunable makes malloc ask for transparent huge pages, which cuts
that to ~500 a step and the step time by a quarter on 2 CPU cores (benchmarks/NOTES.md).
Tunables are read only at process start, hence the re-exec. Results are unchanged: only
where memory comes from changes. SSL_JAX_HUGEPAGES=0 turns it off. Which commands
re-exec: bootstrap.COMMANDS.
"""
import os
import sys

TUNABLE = "glibc.malloc.hugetlb=1"


def wanted(environ=os.environ) -> bool:
  """True where re-executing with the tunable would change anything."""
  if sys.platform != "linux" or environ.get("SSL_JAX_HUGEPAGES", "1") == "0":
    return False
  if "glibc.malloc.hugetlb" in environ.get("GLIBC_TUNABLES", ""):
    return False  # already set, by us or by the user
  try:
    libc, version = os.confstr("CS_GNU_LIBC_VERSION").split()
    if libc != "glibc" or tuple(map(int, version.split(".")[:2])) < (2, 35):
      return False  # the tunable appeared in glibc 2.35
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
      return "[never]" not in f.read()
  except (OSError, ValueError, AttributeError):
    return False


def environ_for_child(environ=os.environ) -> dict:
  """A copy of environ, with the tunable added where wanted (for launching subprocesses)."""
  env = dict(environ)
  if wanted(environ):
    tunables = environ.get("GLIBC_TUNABLES")
    env["GLIBC_TUNABLES"] = f"{tunables}:{TUNABLE}" if tunables else TUNABLE
  return env


def reexec_if_wanted():
  """Replaces this process by the same command with the tunable set (same pid)."""
  if not wanted():
    return
  env = environ_for_child()
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, sys.orig_argv, env)
