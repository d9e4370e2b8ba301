"""Dense layers and the backend choices behind them, decided in one place.

Two model config fields choose how a model computes, never what:
  model.matmul     "auto" | "xla" | "cpu"   dense products: XLA's, or cpu_matmul's product
                                            whose backward pass XLA:CPU runs fast
  model.attention  "auto" | "xla" | "blocked" | "cudnn"   the attention kernel (gpt.py)
"auto" resolves from the platform of the devices the run uses, here and nowhere else;
the models receive the resolved choice. XLA:CPU's own kernel libraries are chosen here
too, per CPU family (xla_cpu_flags), before the backend starts. `python benchmarks/bench.py
--only choices` measures every choice on the host it runs on; benchmarks/RESULTS.md has
the tables per host and benchmarks/NOTES.md the rest.
"""
import os

import flax.linen as nn
import jax

from ssl_jax import host
from ssl_jax.errors import ConfigError
from ssl_jax.models import cpu_matmul

MATMUL_CHOICES = ("auto", "xla", "cpu")
# "blocked": causal self-attention split into query blocks that skip the keys above the
# diagonal; "cudnn": cuDNN's fused kernel (bf16/fp16, no explicit mask). Where the chosen
# kernel does not apply (decoding, padding masks, float32), attention runs the "xla" path.
ATTENTION_CHOICES = ("auto", "xla", "blocked", "cudnn")
_GPU_PLATFORMS = ("gpu", "cuda")


def run_platform(devices=None) -> str:
  """The platform of the devices a run uses: jax.devices(), as parallel.make_mesh takes them."""
  return (devices if devices is not None else jax.devices())[0].platform


def resolve_matmul(choice: str, platform: str) -> str:
  """The hand-written backward was measured faster on XLA:CPU only."""
  _check(choice, MATMUL_CHOICES, "model.matmul")
  if choice != "auto":
    return choice
  return "cpu" if platform == "cpu" else "xla"


def resolve_attention(choice: str, platform: str) -> str:
  """Query blocks were measured on CPU only; GPUs take cuDNN's fused kernel where it
  applies; TPUs and anything else run plain XLA."""
  _check(choice, ATTENTION_CHOICES, "model.attention")
  if choice != "auto":
    return choice
  if platform == "cpu":
    return "blocked"
  return "cudnn" if platform in _GPU_PLATFORMS else "xla"


# XLA:CPU sends convolutions to YNNPACK by default. On AVX2-only EPYC (Zen 3) the SimCLR
# ResNet-18 step ran 4.2x faster on XLA's Eigen convolutions (bench.py --only choices,
# benchmarks/RESULTS.md); AVX-512 hosts were not measured with them, so they keep XLA's
# default. Numerics stay float32; only the kernel changes.
EIGEN_CONVOLUTIONS = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
# Every XLA:CPU option xla_cpu_flags may choose; bench.py --only choices times each.
XLA_CPU_CANDIDATES = {"Eigen convolutions": EIGEN_CONVOLUTIONS}
TUNING_OFF = "SSL_JAX_CPU_TUNING"  # =0: XLA:CPU's defaults on every host


def xla_cpu_flags(cpu_flags) -> list[str]:
  """The XLA:CPU options that won on this CPU family (cpu_flags as in /proc/cpuinfo)."""
  avx2_only = "avx2" in cpu_flags and "avx512f" not in cpu_flags
  return [EIGEN_CONVOLUTIONS] if avx2_only else []


def tune_xla_cpu(environ=os.environ) -> list[str]:
  """Adds xla_cpu_flags for this host to environ's XLA_FLAGS; returns what was added.

  Takes effect only before JAX starts its backend (bootstrap.start calls it first). A
  flag the user already set, by name, is left as the user set it; SSL_JAX_CPU_TUNING=0
  adds nothing. run.json records the resulting XLA_FLAGS.
  """
  if environ.get(TUNING_OFF, "1") == "0":
    return []
  current = environ.get("XLA_FLAGS", "")
  added = [f for f in xla_cpu_flags(host.describe()["flags"])
           if f.split("=")[0] not in current]
  if added:
    environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
  return added


def resolve_backends(model_cfg, platform: str | None = None) -> dict:
  """{"attention", "matmul"} resolved for `platform` (default: the run's) from a model
  config; configs and checkpoints written before these fields existed mean "auto"."""
  platform = platform or run_platform()
  return {"attention": resolve_attention(model_cfg.get("attention", "auto"), platform),
          "matmul": resolve_matmul(model_cfg.get("matmul", "auto"), platform)}


def dense(features: int, *, matmul: str = "xla", **kwargs) -> nn.Dense:
  """nn.Dense whose product follows the resolved `matmul` choice."""
  return nn.Dense(features, dot_general=_dot_general(matmul), **kwargs)


def dense_general(features, *, matmul: str = "xla", axis=-1, **kwargs) -> nn.DenseGeneral:
  """nn.DenseGeneral whose product follows `matmul`, except where it contracts several
  input axes (attention's heads x head size): that input is the attention output
  transposed back from head-major, which the 2-D CPU product would first have to copy,
  and measured no faster."""
  several_axes = not isinstance(axis, int) and len(axis) > 1
  return nn.DenseGeneral(features, axis=axis, **kwargs,
                         dot_general=None if several_axes else _dot_general(matmul))


def _dot_general(matmul: str):
  """None (nn.Dense's default, XLA's product) or cpu_matmul's."""
  _check(matmul, MATMUL_CHOICES[1:], "matmul (resolved)")
  return cpu_matmul.dot_general if matmul == "cpu" else None


def _check(choice: str, choices: tuple, field: str):
  if choice not in choices:
    raise ConfigError(f"{field} must be one of {', '.join(choices)}; got {choice!r}.")
