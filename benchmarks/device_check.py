"""GPU check: gpt2_small training MFU and SimCLR ResNet-18 images/s on one accelerator.

Run through device_check.sh. Needs only jax, flax, optax and numpy (no grain, TFDS or
ml_collections): the gpt2_small shape is written out here, not read from configs/.
`--smoke` runs toy shapes on any backend, to check the logic in seconds.
Prints a markdown block for benchmarks/RESULTS.md and, if $OUT is set, writes JSON there.
"""
import argparse
import datetime
import json
import os
import statistics
import sys
import time

START = time.time()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from benchmarks import common  # noqa: E402

H200_BF16_DENSE_SPEC = 989e12  # FLOP/s, vendor datasheet (SXM, dense)


def log(msg):
  print(f"[{time.time() - START:6.1f}s] {msg}", flush=True)


def timed(row, steps, windows):
  """Median seconds per step over `windows` windows of `steps` steps."""
  times = []
  for _ in range(windows):
    t0 = time.perf_counter()
    row.run(steps)
    times.append((time.perf_counter() - t0) / steps)
  return statistics.median(times), times


def matmul_peak(n, steps, windows):
  from benchmarks import jax_rows
  row = jax_rows.matmul_row(n=n, dtype="bfloat16")
  per_step, _ = timed(row, steps, windows)
  return 2 * n ** 3 / per_step


def gpt_check(shape, peak, steps, windows, dtype):
  from benchmarks import jax_rows
  from ssl_jax.models import layers
  flops_per_token = common.gpt_train_flops_per_token(shape)
  kw = dict(layers=shape.layers, heads=shape.heads, width=shape.width, seq=shape.seq,
            batch=shape.batch, vocab=shape.vocab, flops_per_token=flops_per_token, dtype=dtype)
  attention = layers.resolve_attention("auto", layers.run_platform())
  t0 = time.time()
  try:
    row = jax_rows.gpt_row(**kw, attention=attention)
  except Exception as e:  # e.g. a cuDNN without the fused kernel: retry on the XLA path
    log(f"gpt with attention={attention} failed ({type(e).__name__}: {e}); "
        "retrying with attention=xla")
    attention = "xla"
    row = jax_rows.gpt_row(**kw, attention=attention)
  compile_s = time.time() - t0
  per_step, times = timed(row, steps, windows)
  achieved = flops_per_token * shape.tokens / per_step
  return {"name": "gpt2_small", "shape": shape.label, "dtype": dtype,
          "attention": attention, "params_m": row.extra.get("params_m"),
          "tokens_per_s": round(shape.tokens / per_step),
          "step_ms": round(per_step * 1e3, 2), "tflops_per_s": round(achieved / 1e12, 1),
          "mfu_vs_spec": round(achieved / H200_BF16_DENSE_SPEC, 3),
          "mfu_vs_measured_matmul": round(achieved / peak, 3),
          "xla_mem_gb": round(row.extra.get("xla_mem_mb", float("nan")) / 1024, 1),
          "compile_s": round(compile_s, 1), "loss": float(row.last_metrics["loss"]),
          "window_ms": [round(t * 1e3, 2) for t in times]}


def simclr_check(batch, image_size, width, steps, windows, dtype):
  from benchmarks import jax_rows
  t0 = time.time()
  row = jax_rows.simclr_row(batch=batch, image_size=image_size, width=width, dtype=dtype)
  compile_s = time.time() - t0
  per_step, _ = timed(row, steps, windows)
  return {"name": "simclr_resnet18", "shape": f"{image_size}x{image_size} B{batch} x2 views",
          "dtype": dtype, "images_per_s": round(batch / per_step),
          "step_ms": round(per_step * 1e3, 2), "compile_s": round(compile_s, 1)}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--smoke", action="store_true", help="toy shapes (any backend): logic only")
  p.add_argument("--budget_s", type=float, default=270,
                 help="start no optional part after this many seconds (the .sh stops at 450)")
  args = p.parse_args()
  cache = os.environ.get("SSL_JAX_COMPILATION_CACHE", "/tmp/ssl_jax_device_cache")
  jax.config.update("jax_compilation_cache_dir", cache)
  dev = jax.devices()[0]
  log(f"jax {jax.__version__}, backend {jax.default_backend()}, device: {dev.device_kind} "
      f"(x{jax.device_count()})")
  if args.smoke:
    gpt_shapes = [common.GPTShape(layers=2, heads=2, width=64, seq=64, batch=2, vocab=97)]
    mm_n, steps, windows, simclr = 256, 2, 2, (4, 16, 8)
  else:
    # GPT-2 small: 124M parameters with GPT-2's 50257-token vocabulary, context 1024.
    gpt_shapes = [common.GPTShape(layers=12, heads=12, width=768, seq=1024, batch=b,
                                  vocab=50257) for b in (16, 32)]
    mm_n, steps, windows, simclr = 8192, 10, 5, (512, 32, 64)
  peak = matmul_peak(mm_n, steps, windows)
  results = [{"name": "matmul_bf16", "shape": f"{mm_n}^3",
              "tflops_per_s": round(peak / 1e12, 1)}]
  log(f"bf16 matmul {mm_n}^3: {peak / 1e12:.1f} TFLOP/s "
      f"({peak / H200_BF16_DENSE_SPEC:.0%} of the H200 dense spec)")
  for i, shape in enumerate(gpt_shapes):
    if i and time.time() - START > args.budget_s * 0.6:
      log(f"skipping {shape.label}: time budget")
      continue
    r = gpt_check(shape, peak, steps, windows, "bfloat16")
    results.append(r)
    log(json.dumps(r))
  if time.time() - START < args.budget_s:
    try:
      r = simclr_check(*simclr, steps, windows, "bfloat16")
    except ImportError as e:
      r = {"name": "simclr_resnet18", "error": f"SimCLR code absent: {e}"}
    results.append(r)
    log(json.dumps(r))
  else:
    log("skipping SimCLR: time budget")
  report(dev, results)


def report(dev, results):
  when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  lines = [f"### {when}: {dev.device_kind}, jax {jax.__version__}", "",
           "| check | shape | result |", "|---|---|---|"]
  for r in results:
    if "error" in r:
      result = r["error"]
    elif r["name"] == "matmul_bf16":
      result = f"{r['tflops_per_s']} TFLOP/s"
    elif r["name"] == "gpt2_small":
      result = (f"{r['tokens_per_s']} tokens/s, {r['tflops_per_s']} TFLOP/s, MFU "
                f"{r['mfu_vs_spec']:.1%} of 989 spec / {r['mfu_vs_measured_matmul']:.1%} of "
                f"measured matmul (attention {r['attention']}, compile {r['compile_s']} s)")
    else:
      result = f"{r['images_per_s']} images/s (compile {r['compile_s']} s)"
    lines.append(f"| {r['name']} | {r.get('shape', '')} | {result} |")
  lines.append(f"\nTotal {time.time() - START:.0f} s.")
  print("\n".join(lines), flush=True)
  out = os.environ.get("OUT")
  if out:
    with open(os.path.join(out, "device_check.json"), "w") as f:
      json.dump({"when": when, "device": dev.device_kind, "jax": jax.__version__,
                 "results": results}, f, indent=1)
    with open(os.path.join(out, "device_check.md"), "w") as f:
      f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
  main()
