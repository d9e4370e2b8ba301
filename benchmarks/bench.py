"""ssl_jax against its PyTorch peers and the machine's matmul ceiling, in one run.

    python benchmarks/bench.py [--only gpt|simclr|data|scaling|choices|bf16] [--json]
                               [--rounds N]

Every row runs in its own worker process (worker.py). Rows that are compared are alive
together and timed in interleaved windows, round after round, and each figure is the
median over rounds, so a change in machine load hits every row alike. MFU divides a
row's matmul FLOP rate by the best n^3 matmul rate measured in the same run.
Fields of --json rows: name, impl, shape, tokens_per_s | images_per_s, mfu, peak_mem_mb,
host (CPU model, cores, the instruction-set flags that matter, host kind: ssl_jax/host.py).

`choices` times every CPU-specific choice of ssl_jax/models/layers.py (and the huge-page
tunable) against its alternative on this host; `bf16` times bfloat16 compute against
torch autocast. Speed claims hold per host kind: benchmarks/RESULTS.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from benchmarks import common  # noqa: E402
from ssl_jax import host, hugepages  # noqa: E402

SECTIONS = ("gpt", "simclr", "data", "scaling", "choices", "bf16")
# bf16 compute pays only where the CPU has bf16 instructions; elsewhere --only bf16 runs it.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
HOST = host.describe()  # every row carries it: a speed figure holds for its host kind
TINY = False  # --tiny: toy shapes that check the plumbing in seconds (tests use it)
CACHE = os.environ.get("SSL_JAX_COMPILATION_CACHE", "/tmp/ssl_jax_bench_jax_cache")


class Worker:
  def __init__(self, name, impl, shape, target, env=None, **kwargs):
    """env: variables set for this worker only (a choice that is read at process start)."""
    self.name, self.impl, self.shape, self.env = name, impl, shape, env or {}
    self.windows, self.info, self.error, self.proc = [], {}, None, None
    self.argv = [sys.executable, os.path.join(HERE, "worker.py"), target, json.dumps(kwargs)]

  def start(self):
    # Every row, torch's too, gets the huge-page malloc tunable ssl_jax's entry points set
    # (ssl_jax/hugepages.py); torch measured the same with and without it.
    env = dict(hugepages.environ_for_child({**os.environ, **self.env}),
               SSL_JAX_COMPILATION_CACHE=CACHE, PYTHONUNBUFFERED="1")
    # Workers' stderr goes to a file (a pipe nobody reads could fill and block a worker).
    self.log = tempfile.TemporaryFile("w+")
    self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=self.log, text=True, env=env)

  def _ask(self, line=None):
    if line is not None:
      self.proc.stdin.write(line + "\n")
      self.proc.stdin.flush()
    out = self.proc.stdout.readline()
    if not out:
      self.proc.wait(timeout=60)
      self.log.seek(0)
      err = self.log.read()[-2000:]
      raise RuntimeError(f"worker {self.name}/{self.impl} died: {err.strip()}")
    return json.loads(out)

  def wait_ready(self):
    self.start()
    try:
      self.info = self._ask()
    except RuntimeError as e:
      self.info = {"error": str(e)}
    self.error = self.info.get("error")
    if self.error:
      self.close()
    return self.error is None

  def calibrate(self, target_s):
    """Steps per timing window: about target_s seconds of work, at least one step."""
    t = self._ask("run 1")["wall"]
    self.steps = max(1, round(target_s / max(t, 1e-6)))

  def window(self):
    r = self._ask(f"run {self.steps}")
    self.windows.append((r["wall"] / self.steps, r["cpu"] / self.steps,
                         r["faults"] / self.steps))

  def finish(self):
    if self.error is None:
      self.info.update(self._ask("done"))
    self.close()

  def close(self):
    if self.proc is not None and self.proc.poll() is None:
      self.proc.stdin.close()
      self.proc.wait(timeout=60)

  def rate(self):
    """Median units per second over the windows."""
    return self.info["units_per_step"] / statistics.median(w[0] for w in self.windows)


def measure(workers, rounds, target_s):
  """Brings workers up one by one (so compilations don't overlap), then interleaves."""
  live = []
  for w in workers:
    if w.wait_ready():
      w.calibrate(target_s)
      live.append(w)
  for _ in range(rounds):
    for w in live:
      w.window()
  for w in workers:
    w.finish()
  return live


def row_of(w, peak_flops=None):
  """A result row (dict) for a worker."""
  row = {"name": w.name, "impl": w.impl, "shape": w.shape}
  if w.error:
    return {**row, "error": w.error}
  rate = w.rate()
  unit = w.info["unit"]
  if unit == "flops":
    row["gflops_per_s"] = round(rate / 1e9, 1)
  else:
    row[f"{unit}_per_s"] = round(rate, 1)
  if unit != "flops" and peak_flops:
    row["mfu"] = round(rate / w.info["units_per_step"] * w.info["flops_per_step"] / peak_flops, 3)
  row["peak_mem_mb"] = w.info.get("peak_mem_mb")
  row["cpu_s_per_step"] = round(statistics.median(c for _, c, _ in w.windows), 3)
  # Page faults are the tell of memory mapped afresh each step (ssl_jax/hugepages.py).
  row["faults_per_step"] = round(statistics.median(f for _, _, f in w.windows))
  row["windows"] = len(w.windows)
  row.update(w.info.get("extra", {}))
  return row


def peak_workers():
  """The best of XLA's and torch's n^3 f32 matmul is the ceiling MFU is measured against."""
  n = 128 if TINY else 2048
  workers = [Worker("matmul", "ssl_jax", f"{n}^3 f32 (XLA)", "jax_rows:matmul_row", n=n)]
  if not TINY:
    workers.append(Worker("matmul", "torch", f"{n}^3 f32", "torch_rows:matmul_row", n=n))
  return workers


def peak_of(rows):
  rates = [r["gflops_per_s"] * 1e9 for r in rows if r.get("gflops_per_s")]
  return max(rates) if rates else None


def gpt_shapes():
  if TINY:
    return {"small": common.GPTShape(layers=1, heads=2, width=32, seq=16, batch=2)}
  return common.GPT_SHAPES


def gpt_section(args, emit, state):
  for key, s in gpt_shapes().items():
    kw = dict(layers=s.layers, heads=s.heads, width=s.width, seq=s.seq, batch=s.batch,
              vocab=s.vocab, flops_per_token=common.gpt_train_flops_per_token(s))
    workers = peak_workers() + [
        Worker("gpt", "ssl_jax", s.label, "jax_rows:gpt_row", **kw),
        Worker("gpt", "hf_torch_eager", s.label, "torch_rows:gpt2_row", **kw),
        Worker("gpt", "hf_torch_compile", s.label, "torch_rows:gpt2_row", compile=True, **kw)]
    measure(workers, args.rounds, args.window_s)
    n_peak = len(workers) - 3
    peaks = [row_of(w) for w in workers[:n_peak]]
    peak = peak_of(peaks)
    state.setdefault("peak", peak)
    for r in peaks + [row_of(w, peak) for w in workers[n_peak:]]:
      if r["name"] == "gpt" and r["impl"] == "ssl_jax" and key == "small":
        state["gpt_tokens_per_s"] = r.get("tokens_per_s")
      emit(r)


def simclr_section(args, emit, state):
  try:
    import ssl_jax.models.resnet  # noqa: F401  (the SimCLR code of another change)
    import ssl_jax.objectives.simclr  # noqa: F401
  except ImportError as e:
    emit({"name": "simclr", "impl": "ssl_jax", "shape": "-", "error": f"SimCLR code absent: {e}"})
    return
  from benchmarks import jax_rows
  batch, size, width = (4, 16, 8) if TINY else (32, 32, 64)
  shape = f"ResNet-18 {size}x{size} B{batch} (2 views)"
  flops = jax_rows.resnet18_train_flops(size, width) * 2 * batch
  workers = peak_workers() + [
      Worker("simclr", "ssl_jax", shape, "jax_rows:simclr_row", batch=batch, image_size=size,
             width=width),
      Worker("simclr", "torch_eager", shape, "torch_rows:simclr_row", batch=batch,
             image_size=size, width=width, flops_per_step=flops)]
  measure(workers, args.rounds, args.window_s)
  n_peak = len(workers) - 2
  peak = peak_of([row_of(w) for w in workers[:n_peak]]) or state.get("peak")
  for w in workers[n_peak:]:
    r = row_of(w, peak)
    if r["impl"] == "ssl_jax":
      state["simclr_images_per_s"] = r.get("images_per_s")
    emit(r)


def data_section(args, emit, state):
  s = gpt_shapes()["small"]
  workers = [Worker("data", "ssl_jax", f"text T{s.seq} B{s.batch}", "data_rows:text_row",
                    seq=s.seq, batch=s.batch),
             Worker("data", "ssl_jax", "images 32x32 B32 + 2 SimCLR views", "data_rows:image_row",
                    batch=32)]
  if "gpt_tokens_per_s" not in state:  # what training consumes, measured now
    kw = dict(layers=s.layers, heads=s.heads, width=s.width, seq=s.seq, batch=s.batch,
              vocab=s.vocab, flops_per_token=common.gpt_train_flops_per_token(s))
    workers.append(Worker("gpt", "ssl_jax", s.label, "jax_rows:gpt_row", **kw))
  measure(workers, args.rounds, args.window_s)
  rows = [row_of(w) for w in workers]
  if len(workers) == 3 and "tokens_per_s" in rows[2]:
    state["gpt_tokens_per_s"] = rows[2]["tokens_per_s"]
  consumed = {"tokens_per_s": state.get("gpt_tokens_per_s"),
              "images_per_s": state.get("simclr_images_per_s")}
  for r in rows[:2]:
    for unit, train_rate in consumed.items():
      if unit in r and train_rate:
        r["x_training"] = round(r[unit] / train_rate, 1)
    emit(r)


def scaling_section(args, emit, state):
  """ssl_jax's GPT as the sequence grows (tokens per step fixed) and as the width grows."""
  if TINY:
    configs = [(2, 32, 16, 2)]
  else:
    configs = [(4, 256, seq, 2048 // seq) for seq in (128, 256, 512, 1024)]
    configs += [(w // 64, w, 256, 8) for w in (128, 512)]
  if "peak" not in state:
    peaks = measure(peak_workers(), max(2, args.rounds // 2), args.window_s)
    state["peak"] = peak_of([row_of(w) for w in peaks])
  for heads, width, seq, batch in configs:
    layers = 1 if TINY else 4
    s = common.GPTShape(layers=layers, heads=heads, width=width, seq=seq, batch=batch)
    w = Worker("scaling", "ssl_jax", s.label, "jax_rows:gpt_row", layers=layers, heads=heads,
               width=width, seq=seq, batch=batch, vocab=s.vocab,
               flops_per_token=common.gpt_train_flops_per_token(s))
    measure([w], max(2, args.rounds // 2), args.window_s)
    emit(row_of(w, state.get("peak")))


def _gpt_kwargs(s):
  return dict(layers=s.layers, heads=s.heads, width=s.width, seq=s.seq, batch=s.batch,
              vocab=s.vocab, flops_per_token=common.gpt_train_flops_per_token(s))


def _choice_variants():
  """(label, row kwargs, worker env) for each CPU-specific choice's alternative; the first
  is what this host runs by default. Every variant pins the XLA:CPU options it runs with."""
  from ssl_jax.models import layers
  tuned = layers.xla_cpu_flags(HOST["flags"])
  base_env = {"XLA_FLAGS": " ".join(tuned), layers.TUNING_OFF: "0"}
  variants = [("auto", {}, base_env),
              ("huge pages off", {}, {**base_env, "SSL_JAX_HUGEPAGES": "0"})]
  for name, flag in layers.XLA_CPU_CANDIDATES.items():
    on = flag in tuned
    others = [f for f in tuned if f != flag] + ([] if on else [flag])
    variants.append((f"{'without' if on else 'with'} {name}", {},
                     {"XLA_FLAGS": " ".join(others), layers.TUNING_OFF: "0"}))
  return variants


def choices_section(args, emit, state):
  """Each CPU-specific choice against its alternative on this host, interleaved. vs_auto:
  the row's speed over the auto row's (above 1 means the alternative wins here)."""
  s = gpt_shapes()["small"]
  common_variants = _choice_variants()
  gpt_variants = common_variants[:1] + [
      ("matmul=xla", {"matmul": "xla"}, common_variants[0][2]),
      ("attention=xla", {"attention": "xla"}, common_variants[0][2])] + common_variants[1:]
  gpt = [Worker("choices", "ssl_jax", s.label, "jax_rows:gpt_row", env=env, **_gpt_kwargs(s),
                **kw) for _, kw, env in gpt_variants]
  batch, size, width = (4, 16, 8) if TINY else (32, 32, 64)
  shape = f"ResNet-18 {size}x{size} B{batch} (2 views)"
  simclr = [Worker("choices", "ssl_jax", shape, "jax_rows:simclr_row", env=env, batch=batch,
                   image_size=size, width=width) for _, _, env in common_variants]
  for workers, variants in ((gpt, gpt_variants), (simclr, common_variants)):
    measure(workers, args.rounds, args.window_s)
    rows = [row_of(w) for w in workers]
    auto = rows[0].get("tokens_per_s") or rows[0].get("images_per_s")
    for r, (label, _, env) in zip(rows, variants):
      r["choice"] = label
      r["xla_flags"] = env.get("XLA_FLAGS", "")
      rate = r.get("tokens_per_s") or r.get("images_per_s")
      if rate and auto:
        r["vs_auto"] = round(rate / auto, 3)
      emit(r)


def _has_bf16():
  return any(f in HOST["flags"] for f in BF16_FLAGS)


def bf16_section(args, emit, state):
  """bfloat16 compute (model.dtype=bfloat16, float32 parameters) against torch autocast
  bfloat16, with float32 ssl_jax as the reference, and both frameworks' bf16 matmul rate."""
  s = gpt_shapes()["small"]
  n = 128 if TINY else 2048
  workers = [Worker("matmul", "ssl_jax", f"{n}^3 bf16 (XLA)", "jax_rows:matmul_row", n=n,
                    dtype="bfloat16"),
             Worker("bf16", "ssl_jax float32", s.label, "jax_rows:gpt_row", **_gpt_kwargs(s)),
             Worker("bf16", "ssl_jax", s.label, "jax_rows:gpt_row", dtype="bfloat16",
                    **_gpt_kwargs(s))]
  if not TINY and not _has_bf16():  # NOTES.md: 0.8 GFLOP/s, minutes a step
    print("bf16: no AVX512-BF16 or AMX on this CPU; PyTorch's bf16 rows left out",
          file=sys.stderr)
  elif not TINY:
    workers[1:1] = [Worker("matmul", "torch", f"{n}^3 bf16", "torch_rows:matmul_row", n=n,
                           dtype="bfloat16")]
    workers += [Worker("bf16", "hf_torch_eager autocast", s.label, "torch_rows:gpt2_row",
                       autocast=True, **_gpt_kwargs(s)),
                Worker("bf16", "hf_torch_compile autocast", s.label, "torch_rows:gpt2_row",
                       compile=True, autocast=True, **_gpt_kwargs(s))]
  measure(workers, args.rounds, args.window_s)
  peaks = [row_of(w) for w in workers if w.name == "matmul"]
  peak = peak_of(peaks)
  for r in peaks + [row_of(w, peak) for w in workers if w.name != "matmul"]:
    emit(r)


def fmt_host(h):
  return (f"Host: {h['kind']} ({h['cpu']}; {h['cores']} cores; flags "
          f"{' '.join(h['flags']) or 'none'})")


def fmt_table(rows):
  cols = ["name", "impl", "shape", "choice", "tokens_per_s", "images_per_s", "gflops_per_s",
          "mfu", "vs_auto", "x_training", "peak_mem_mb", "xla_mem_mb", "cpu_s_per_step",
          "faults_per_step", "error"]
  cols = [c for c in cols if any(c in r and r[c] is not None for r in rows)]
  lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
  for r in rows:
    cells = []
    for c in cols:
      v = r.get(c, "")
      cells.append(f"{v:.0%}" if c == "mfu" and isinstance(v, float) else str(v))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--only", choices=SECTIONS, action="append",
                 help="run only this section (repeatable); default: all")
  p.add_argument("--json", action="store_true", help="one JSON object per row, nothing else")
  p.add_argument("--rounds", type=int, default=3, help="interleaved timing windows per row")
  p.add_argument("--window_s", type=float, default=2.0, help="seconds per timing window")
  p.add_argument("--tiny", action="store_true", help="toy shapes: checks the plumbing only")
  p.add_argument("--render", metavar="ROWS.jsonl",
                 help="print the table of an earlier --json run (its host, no timing)")
  args = p.parse_args(argv)
  if args.render:
    with open(args.render) as f:
      rows = [json.loads(line) for line in f if line.strip()]
    print(f"{fmt_host(rows[0]['host'])}, {rows[0].get('date', 'date not recorded')}\n\n"
          + fmt_table(rows))
    return 0
  global TINY
  TINY = args.tiny
  rows, state = [], {}

  def emit(row):
    row["host"] = HOST
    row["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows.append(row)
    if args.json:
      print(json.dumps(row), flush=True)
    else:
      print(f"  {row['name']}/{row['impl']} {row['shape']}: "
            + ", ".join(f"{k}={v}" for k, v in row.items()
                        if k not in ("name", "impl", "shape", "host")),
            file=sys.stderr, flush=True)

  # Default run: every section but bf16 where the CPU has no bf16 instructions.
  order = [s for s in SECTIONS
           if (s in args.only if args.only else s != "bf16" or _has_bf16())]
  for section in order:
    globals()[f"{section}_section"](args, emit, state)
  if not args.json:
    print(f"{fmt_host(HOST)}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print(fmt_table(rows))
    if state.get("peak"):
      print(f"\nMFU = matmul FLOP/s (causal attention counted as half) / best n^3 f32 "
            f"matmul rate of this run ({state['peak'] / 1e9:.0f} GFLOP/s).")
  return 0


if __name__ == "__main__":
  sys.exit(main())
