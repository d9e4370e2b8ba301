"""One benchmark row in its own process, driven over stdin/stdout by bench.py.

    python benchmarks/worker.py MODULE:FUNCTION 'JSON kwargs'

Builds the row (compiling and warming it), replies {"ready": ...}, then answers each
`run N` with the wall and CPU seconds of N steps, and `done` with its peak memory.
A process per row keeps the frameworks' thread pools and memory readings apart, and
lets bench.py interleave the rows' timing windows so load changes hit them all alike.
"""
import importlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402


def main():
  target, kwargs = sys.argv[1], json.loads(sys.argv[2])
  reply_to = os.fdopen(os.dup(1), "w")
  os.dup2(2, 1)  # libraries' prints go to stderr; stdout carries only replies

  def reply(obj):
    reply_to.write(json.dumps(obj) + "\n")
    reply_to.flush()

  module, function = target.split(":")
  if module == "jax_rows":
    from ssl_jax.models import layers
    layers.tune_xla_cpu()  # what ssl_jax's commands do first (SSL_JAX_CPU_TUNING=0: not)
    import jax
    cache = os.environ.get("SSL_JAX_COMPILATION_CACHE")
    if cache:
      jax.config.update("jax_compilation_cache_dir", cache)
  t0 = time.perf_counter()
  try:
    build = getattr(importlib.import_module(f"benchmarks.{module}"), function)
    rss_before = common.rss_mb()  # after the framework's import: count the row's own memory
    row = build(**kwargs)
  except Exception as e:  # reported as the row's error, the run goes on
    reply({"error": f"{type(e).__name__}: {e}"})
    return
  can_reset = common.reset_peak_rss()
  reply({"ready": True, "setup_s": round(time.perf_counter() - t0, 1), "unit": row.unit,
         "units_per_step": row.units_per_step, "flops_per_step": row.flops_per_step,
         "extra": row.extra})
  for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "run":
      # One untimed step first: this row sat idle while the others ran, and on a VM the
      # memory it freed may have been handed back to the host meanwhile (benchmarks/NOTES.md:
      # +400 ms of kernel time on ssl_jax's first step after 3 s idle). A training loop
      # does not idle like that; every row gets the same warm-up.
      row.run(1)
      with common.Window() as w:
        row.run(int(cmd[1]))
      reply({"wall": w.wall, "cpu": w.cpu, "faults": w.faults})
    elif cmd[0] == "done":
      peak = common.peak_rss_mb() - rss_before if can_reset else float("nan")
      reply({"peak_mem_mb": round(peak, 1)})
      return


if __name__ == "__main__":
  main()
