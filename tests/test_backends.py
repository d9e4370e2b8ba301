"""Backend choices are config fields (model.attention, model.matmul), resolved in one place
(ssl_jax/models/layers.py) from the platform of the run's devices, and reach the model."""
import chex
import jax
import jax.numpy as jnp
import ml_collections
import pytest

from ssl_jax import host, models
from ssl_jax.errors import ConfigError
from ssl_jax.models import encoders, gpt, layers

V, T = 37, 128  # T: two query blocks of 64, where the blocked path applies


@pytest.mark.parametrize("platform, attention, matmul", [
    ("cpu", "blocked", "cpu"),  # both measured on CPU
    ("gpu", "cudnn", "xla"),
    ("cuda", "cudnn", "xla"),
    ("tpu", "xla", "xla"),  # never measured there: plain XLA
    ("METAL", "xla", "xla"),
])
def test_auto_is_a_function_of_the_platform(platform, attention, matmul):
  assert layers.resolve_attention("auto", platform) == attention
  assert layers.resolve_matmul("auto", platform) == matmul


@pytest.mark.parametrize("platform", ["cpu", "gpu", "tpu"])
def test_explicit_choices_are_kept_on_every_platform(platform):
  for choice in layers.ATTENTION_CHOICES[1:]:
    assert layers.resolve_attention(choice, platform) == choice
  for choice in layers.MATMUL_CHOICES[1:]:
    assert layers.resolve_matmul(choice, platform) == choice
  with pytest.raises(ConfigError, match="model.attention"):
    layers.resolve_attention("flash", platform)


def _model_config(**fields):
  c = ml_collections.ConfigDict(dict(
      name="gpt", max_len=T, num_layers=1, num_heads=2, width=32, mlp_ratio=4, dropout=0.0,
      position="rope", remat=False, dtype="float32"))
  c.update(fields)
  return c


def test_config_fields_reach_the_model():
  model = models.language_model(_model_config(attention="xla", matmul="cpu"), V)
  assert (model.attention, model.matmul) == ("xla", "cpu")
  tpu = models.language_model(_model_config(attention="auto", matmul="auto"), V, platform="tpu")
  assert (tpu.attention, tpu.matmul) == ("xla", "xla")
  # A config (or checkpoint) from before these fields existed: "auto", on this CPU run.
  old = models.language_model(_model_config(), V)
  assert (old.attention, old.matmul) == ("blocked", "cpu")
  vit = encoders.image_encoder(ml_collections.ConfigDict(dict(
      name="vit", patch_size=2, depth=1, width=16, num_heads=2, pool="mean", matmul="auto")),
      platform="cpu")
  assert vit.matmul == "cpu"


def _count_primitives(fn, *args, name):
  return str(jax.make_jaxpr(fn)(*args)).count(name)


def test_each_choice_changes_the_computation_not_the_function():
  tokens = jax.random.randint(jax.random.key(0), (2, T), 0, V)
  variants = {(a, m): models.language_model(_model_config(attention=a, matmul=m), V)
              for a, m in [("xla", "xla"), ("blocked", "xla"), ("xla", "cpu")]}
  params = variants["xla", "xla"].init(jax.random.key(1), tokens)["params"]

  def loss(model):
    return lambda p: jnp.mean(model.apply({"params": p}, tokens) ** 2)

  plain = variants["xla", "xla"]
  # Two query blocks: two softmaxes instead of one; the CPU product is a custom VJP.
  assert (_count_primitives(loss(variants["blocked", "xla"]), params, name="exp")
          > _count_primitives(loss(plain), params, name="exp"))
  assert _count_primitives(loss(variants["xla", "cpu"]), params, name="custom_vjp") > 0
  assert _count_primitives(loss(plain), params, name="custom_vjp") == 0
  want_value, want_grad = jax.value_and_grad(loss(plain))(params)
  for key in [("blocked", "xla"), ("xla", "cpu")]:
    value, grad = jax.value_and_grad(loss(variants[key]))(params)
    chex.assert_trees_all_close((value, grad), (want_value, want_grad), rtol=1e-4, atol=1e-6)


def test_cudnn_choice_off_its_kernel_runs_the_xla_path():
  """float32 on CPU: the fused kernel does not apply, so attention is plain XLA."""
  q = jax.random.normal(jax.random.key(0), (1, 16, 2, 8))
  chex.assert_trees_all_close(gpt.attention(q, q, q, causal=True, kernel="cudnn"),
                              gpt.attention(q, q, q, causal=True, kernel="xla"))


def test_product_over_several_input_axes_stays_xla():
  """The attention output projection contracts heads x head size of a transposed input."""
  assert layers.dense_general(8, matmul="cpu", axis=(-2, -1)).dot_general is None
  assert layers.dense_general(8, matmul="cpu").dot_general is not None
  assert layers.dense(8, matmul="xla").dot_general is None


def test_no_module_level_backend_switch():
  assert not hasattr(gpt, "ATTENTION_IMPL")


_CHECK_WITHOUT_BACKEND = """
from jax._src import xla_bridge
from configs import gpt_tiny, simclr_digits
from ssl_jax import config_check
vit = simclr_digits.get_config()
vit.model.name = "vit"
for config in (gpt_tiny.get_config(), vit):
  config_check.check(config)
assert not xla_bridge._backends, "a config check initialised the JAX backend"
"""


def test_config_checks_resolve_no_backend():
  """"auto" is resolved when a model is built, after distributed initialisation, never
  while configs are checked (jax.distributed.initialize must come before any device use)."""
  import subprocess
  import sys
  out = subprocess.run([sys.executable, "-c", _CHECK_WITHOUT_BACKEND], capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]


# XLA:CPU's kernel libraries, chosen per CPU family (layers.xla_cpu_flags, ssl_jax/host.py).

_CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
model name\t: {model}
flags\t\t: fpu sse2 {flags}

processor\t: 1
model name\t: {model}
flags\t\t: fpu sse2 {flags}
"""


@pytest.mark.parametrize("model, flags, kind, tuned", [
    ("AMD EPYC 7B13", "avx avx2 fma", "AMD EPYC, AVX2", [layers.EIGEN_CONVOLUTIONS]),
    ("AMD EPYC 9B14", "avx2 fma avx512f avx512_vnni avx512_bf16",
     "AMD EPYC, AVX-512 + AVX512-BF16", []),
    ("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
     "avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile", "Intel Xeon, AVX-512 + AVX512-BF16 + AMX",
     []),
    ("Neoverse-N1", "", "Neoverse-N1, " + __import__("platform").machine(), []),  # not x86
])
def test_host_kind_and_its_xla_cpu_flags(tmp_path, model, flags, kind, tuned):
  path = tmp_path / "cpuinfo"
  path.write_text(_CPUINFO.format(vendor="x", model=model, flags=flags))
  described = host.describe(str(path))
  assert described["cpu"] == model and described["kind"] == kind
  assert described["flags"] == [f for f in host.FLAGS if f in flags.split()]
  assert described["cores"] >= 1
  assert layers.xla_cpu_flags(described["flags"]) == tuned


def test_tuning_adds_flags_once_and_defers_to_the_user(monkeypatch):
  monkeypatch.setattr(layers, "xla_cpu_flags", lambda flags: [layers.EIGEN_CONVOLUTIONS])
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  assert layers.tune_xla_cpu(env) == [layers.EIGEN_CONVOLUTIONS]
  assert env["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=8",
                                      layers.EIGEN_CONVOLUTIONS]
  assert layers.tune_xla_cpu(env) == [] and env["XLA_FLAGS"].count("ynn") == 1
  mine = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=individual_dot"}
  assert layers.tune_xla_cpu(mine) == []  # the user's setting of that flag stands
  off = {layers.TUNING_OFF: "0"}
  assert layers.tune_xla_cpu(off) == [] and "XLA_FLAGS" not in off


_CONV_BACKEND = """
import jax, jax.numpy as jnp
x, w = jnp.ones((8, 16, 16, 32)), jnp.ones((3, 3, 32, 32))
f = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                              dimension_numbers=("NHWC", "HWIO", "NHWC"))
hlo = jax.jit(f).lower(x, w).compile().as_text()
print("ynn" if "ynn_fusion" in hlo else "eigen")
"""


def test_the_convolution_flag_moves_convolutions_out_of_ynnpack():
  """The flag xla_cpu_flags sets still means what it was measured as (jax upgrades rename
  and re-default these): XLA's default sends a convolution to YNNPACK, the flag to Eigen."""
  import os
  import subprocess
  import sys

  def backend(flags):
    env = dict(os.environ, XLA_FLAGS=flags)
    out = subprocess.run([sys.executable, "-c", _CONV_BACKEND], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()[-1]

  assert backend("") == "ynn"
  assert backend(layers.EIGEN_CONVOLUTIONS) == "eigen"
