"""Shared pieces of the benchmarks: shapes, FLOP counts, memory readings, timing.

Nothing here imports JAX or torch: each worker process imports only the framework it times.
"""
import dataclasses
import os
import resource
import time

BYTE_VOCAB = 257  # ssl_jax's byte tokenizer: 256 byte values + end-of-document
# simclr.temperature of configs/simclr_cifar10_resnet18.py, the recipe the SimCLR rows
# time (tests/test_bench.py checks they agree). A constant, not a config read: the GPU
# image that runs device_check.py has no ml_collections.
SIMCLR_TEMPERATURE = 0.5


@dataclasses.dataclass(frozen=True)
class GPTShape:
  layers: int
  heads: int
  width: int
  seq: int
  batch: int
  vocab: int = BYTE_VOCAB

  @property
  def label(self) -> str:
    return f"L{self.layers} H{self.heads} D{self.width} T{self.seq} B{self.batch}"

  @property
  def tokens(self) -> int:
    return self.seq * self.batch


# The first shape, and a larger one (wider, longer context, same tokens per step,
# about twice the FLOPs) that still fits a 2-core CPU run shared with other work.
GPT_SHAPES = {
    "small": GPTShape(layers=4, heads=4, width=256, seq=256, batch=8),
    "large": GPTShape(layers=4, heads=6, width=384, seq=512, batch=4),
}


def gpt_train_flops_per_token(s: GPTShape) -> float:
  """Matmul FLOPs of one training token (forward + backward = 3x forward).

  Dense layers: 2 * params per token forward (qkv, out, two MLP layers: 12 D^2 per layer,
  plus the tied output projection D*V). Attention: q.k and p.v, 2 * 2 * T * D per token
  forward at full length; causal attention needs only half of it, and half is what we
  count (PaLM's and nanoGPT's 12 L T D count the masked half too), so an implementation
  gets no credit for work above the diagonal.
  """
  dense = 12 * s.layers * s.width ** 2 + s.width * s.vocab  # multiply-adds per token
  attention = s.layers * s.seq * s.width  # q.k and p.v: 2 T D multiply-adds, halved
  return 3 * 2 * (dense + attention)


def rss_mb() -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def reset_peak_rss():
  """Resets VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return True
  except OSError:
    return False


def peak_rss_mb() -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 1024
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Window:
  """Wall and process CPU seconds, and minor page faults, of a block of work."""

  def __enter__(self):
    self.wall0, self.cpu0 = time.perf_counter(), sum(os.times()[:2])
    self.faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    return self

  def __exit__(self, *exc):
    self.wall = time.perf_counter() - self.wall0
    self.cpu = sum(os.times()[:2]) - self.cpu0
    self.faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self.faults0
