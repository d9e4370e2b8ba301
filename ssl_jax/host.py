"""The CPU a process runs on: model, cores and the instruction sets that decide its speed.

Pure Python (no jax): the benchmarks' parent process, run.json and models/layers.py
(which picks XLA:CPU options per CPU family) share it. `kind`
names a host family the way benchmarks/RESULTS.md groups its tables, e.g.
"AMD EPYC, AVX2" or "Intel Xeon, AVX-512 + AVX512-BF16 + AMX".
"""
import os
import platform

# The flags that change which kernels XLA:CPU and PyTorch pick, as /proc/cpuinfo spells them.
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def _cpuinfo(path: str = "/proc/cpuinfo") -> tuple[str, set]:
  model, flags = platform.processor() or platform.machine(), set()
  try:
    with open(path) as f:
      for line in f:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
          model = value.strip()
        elif key in ("flags", "Features") and not flags:
          flags = set(value.split())
  except OSError:
    pass
  return model, flags


def cores() -> int:
  """CPUs this process may run on (a container's or taskset's limit, not the machine's)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


def kind_of(model: str, flags) -> str:
  """The host family: vendor line plus its widest vector and matrix extensions."""
  isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else platform.machine()
  extras = [name for flag, name in (("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX"))
            if flag in flags]
  vendor = next((v for v in ("AMD EPYC", "AMD Ryzen", "Intel Xeon", "Intel Core") if
                 all(w in model for w in v.split())), model.split("@")[0].strip() or "unknown")
  return f"{vendor}, " + " + ".join([isa, *extras])


def describe(path: str = "/proc/cpuinfo") -> dict:
  """{"cpu", "cores", "flags" (those of FLAGS present), "kind"}: what a speed figure needs."""
  model, flags = _cpuinfo(path)
  return {"cpu": model, "cores": cores(), "flags": [f for f in FLAGS if f in flags],
          "kind": kind_of(model, flags)}
