"""The two-tower contrastive losses, CLIP and SigLIP: against NumPy references written from
the papers, over the global batch under a device axis, the clamped learned scale and bias,
and the properties that define them (alignment, symmetry, the sigmoid loss's known value)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from ssl_jax.objectives import clip, siglip

N_DEV = 8
RTOL = 1e-5


def _normal(seed, shape, scale=1.0):
  # NumPy draws: jax.random would compile a generator for every shape.
  return jnp.asarray(scale * np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _f64(x):
  return np.asarray(x, np.float64)


def _unit(z):
  return z / np.linalg.norm(z, axis=1, keepdims=True)


def _log_softmax(v):
  v = v - v.max()
  return v - np.log(np.exp(v).sum())


# ---------------------------------------------------------------------------------------
# NumPy references, written from the papers' definitions (float64, explicit loops).


def numpy_clip(x, y, scale):
  """Per-row cross entropies and top-1 hits, x -> y and y -> x, over the whole batch."""
  x, y = _unit(x), _unit(y)
  n = len(x)
  ce_x2y, ce_y2x, hit_x2y, hit_y2x = [], [], [], []
  for i in range(n):
    row = np.array([scale * x[i] @ y[j] for j in range(n)])
    col = np.array([scale * y[i] @ x[j] for j in range(n)])
    ce_x2y.append(-_log_softmax(row)[i])
    ce_y2x.append(-_log_softmax(col)[i])
    hit_x2y.append(np.argmax(row) == i)
    hit_y2x.append(np.argmax(col) == i)
  return tuple(map(np.array, (ce_x2y, ce_y2x, hit_x2y, hit_y2x)))


def numpy_siglip(x, y, scale, bias):
  """Per-row -sum_j log sigmoid(label_ij * logit_ij), and the logits."""
  x, y = _unit(x), _unit(y)
  n = len(x)
  logits = np.zeros((n, n))
  rows = np.zeros(n)
  for i in range(n):
    for j in range(n):
      logits[i, j] = scale * x[i] @ y[j] + bias
      label = 1.0 if i == j else -1.0
      rows[i] += np.logaddexp(0.0, -label * logits[i, j])  # -log sigmoid(t) = log(1 + e^-t)
  return rows, logits


def _clip_terms(x, y, log_scale):
  ce_x2y, ce_y2x, hit_x2y, hit_y2x = numpy_clip(_f64(x), _f64(y), math.exp(log_scale))
  want = {"loss": (ce_x2y.mean() + ce_y2x.mean()) / 2, "x_to_y_accuracy": hit_x2y.mean(),
          "y_to_x_accuracy": hit_y2x.mean(), "logit_scale": math.exp(log_scale),
          "temperature": math.exp(-log_scale)}
  return want, (ce_x2y + ce_y2x) / 2


def _siglip_terms(x, y, log_scale, bias):
  rows, logits = numpy_siglip(_f64(x), _f64(y), math.exp(log_scale), bias)
  n = len(rows)
  off = ~np.eye(n, dtype=bool)
  want = {"loss": rows.mean(), "logit_scale": math.exp(log_scale), "bias": bias,
          "positive_logit": np.diag(logits).mean(), "negative_logit": logits[off].mean(),
          "x_to_y_accuracy": np.mean(np.argmax(logits, 1) == np.arange(n)),
          "y_to_x_accuracy": np.mean(np.argmax(logits, 0) == np.arange(n))}
  return want, rows


def _assert_metrics(got, want, rtol=RTOL, atol=0.0):
  assert set(got) == set(want)
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=atol, err_msg=key)


# ---------------------------------------------------------------------------------------
# Against the references


@pytest.mark.parametrize("B,D,log_scale", [(5, 3, clip.INIT_LOG_SCALE), (8, 6, math.log(2.0)),
                                           (4, 16, 0.0)])
def test_clip_matches_numpy(B, D, log_scale):
  x = _normal(0, (B, D), 3.0)  # raw projections: the loss normalises them
  y = x * 0.5 + _normal(1, (B, D))
  got_loss, got = jax.jit(clip.loss)(x, y, jnp.float32(log_scale))
  want, _ = _clip_terms(x, y, log_scale)
  np.testing.assert_allclose(got_loss, want["loss"], rtol=RTOL)
  _assert_metrics(got, want)


@pytest.mark.parametrize("B,D,log_scale,bias", [
    (5, 3, siglip.INIT_LOG_SCALE, siglip.INIT_BIAS), (8, 6, math.log(3.0), 1.5),
    (4, 16, math.log(50.0), -30.0)])
def test_siglip_matches_numpy(B, D, log_scale, bias):
  x = _normal(2, (B, D), 3.0)
  y = x * 0.5 + _normal(3, (B, D))
  got_loss, got = jax.jit(siglip.loss)(x, y, jnp.float32(log_scale), jnp.float32(bias))
  want, _ = _siglip_terms(x, y, log_scale, bias)
  np.testing.assert_allclose(got_loss, want["loss"], rtol=RTOL)
  # Logit means near 0 lose relative precision to float32 cancellation: a small atol.
  _assert_metrics(got, want, atol=1e-5 * max(1.0, math.exp(log_scale) + abs(bias)))


# ---------------------------------------------------------------------------------------
# The global batch under a device axis (8 CPU devices, 2 pairs each)


def _mesh():
  assert len(jax.devices()) == N_DEV
  return Mesh(np.array(jax.devices()), ("d",))


LOSSES = {  # name: (loss of (x, y, log_scale, bias, axis_name), log_scale, bias, reference)
    "clip": (lambda x, y, s, b, ax: clip.loss(x, y, s, ax), clip.INIT_LOG_SCALE, 0.0,
             lambda x, y, s, b: _clip_terms(x, y, s)),
    "siglip": (siglip.loss, math.log(5.0), -2.0, _siglip_terms),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_sharded_loss_metrics_and_gradients_equal_the_global_batch(name):
  loss_fn, log_scale, bias, reference = LOSSES[name]
  n, D = 2 * N_DEV, 5
  x = _normal(4, (n, D))
  y = x + _normal(5, (n, D), 0.8)
  params = (jnp.float32(log_scale), jnp.float32(bias))
  argnums = (0, 1, 2, 3)
  want_loss, want_metrics = jax.jit(lambda *a: loss_fn(*a, None))(x, y, *params)
  want_grads = jax.jit(jax.grad(lambda *a: loss_fn(*a, None)[0], argnums))(x, y, *params)

  def per_device(x_Bx5, y_Bx5, s_1, b_1):
    # Scale and bias as each device's own copy, as under pmap; the train step averages
    # their gradients over the axis.
    (loss, metrics), grads = jax.value_and_grad(
        lambda s, b: loss_fn(x_Bx5, y_Bx5, s, b, "d"), (0, 1), has_aux=True)(s_1[0], b_1[0])
    return loss[None], metrics, jax.lax.pmean(grads, "d")

  sharded = jax.shard_map(per_device, mesh=_mesh(), in_specs=P("d"),
                          out_specs=(P("d"), P(), P()))
  copies = tuple(jnp.broadcast_to(p, (N_DEV,)) for p in params)
  mean_loss = lambda *a: jnp.mean(sharded(*a)[0])  # the global loss as the devices see it
  (loss_D, metrics, param_grads), grads = jax.jit(
      lambda *a: (sharded(*a), jax.grad(mean_loss, argnums)(*a)))(x, y, *copies)

  # Each device's loss: the mean of its own rows' terms, negatives from the whole batch.
  ref_metrics, ref_rows = reference(x, y, log_scale, bias)
  np.testing.assert_allclose(loss_D, ref_rows.reshape(N_DEV, -1).mean(1), rtol=RTOL)
  np.testing.assert_allclose(loss_D.mean(), want_loss, rtol=RTOL)
  _assert_metrics(metrics, want_metrics, atol=1e-6)
  _assert_metrics(metrics, ref_metrics, atol=1e-5)
  # The mean of the per-device losses has the global loss's gradient, rows and parameters;
  # the per-device parameter gradients averaged over the axis are the same.
  for got, want in zip(grads[:2] + param_grads, want_grads):
    np.testing.assert_allclose(got if got.ndim == 2 else np.mean(got), want, rtol=1e-4,
                               atol=1e-6)
  for got, want in zip(grads[2:], want_grads[2:]):
    np.testing.assert_allclose(np.sum(got), want, rtol=1e-4, atol=1e-6)
  # Negatives from the device's own 2 rows only would give another loss.
  local_only = np.mean([reference(x[i:i + 2], y[i:i + 2], log_scale, bias)[0]["loss"]
                        for i in range(0, n, 2)])
  assert abs(local_only - float(want_loss)) > 1e-2 * abs(float(want_loss))


# ---------------------------------------------------------------------------------------
# The learned scale and bias: gradients inside the clamp, none outside, never past it


def _descend(loss_fn, x, y, params, lr, steps=20):
  """Plain gradient steps on the scalar params; (params, grads, metrics) after each step."""
  grad_fn = jax.jit(jax.value_and_grad(lambda p: loss_fn(x, y, *p), has_aux=True))
  history = []
  for _ in range(steps):
    (_, metrics), grads = grad_fn(params)
    history.append((params, grads, metrics))
    params = tuple(p - lr * g for p, g in zip(params, grads))
  return history


@pytest.mark.parametrize("push", ["up", "down"])
def test_clip_scale_is_learned_and_clamped(push):
  x = _normal(6, (4, 6))
  # Matching pairs alike: a larger scale helps. Matching pairs opposite: a smaller one does.
  y = x + _normal(7, (4, 6), 0.3) if push == "up" else -x
  history = _descend(clip.loss, x, y, (jnp.float32(clip.INIT_LOG_SCALE),), lr=1e3)
  (first_grad,), (last_params, last_grad, last_metrics) = history[0][1], history[-1]
  assert float(first_grad) != 0.0
  assert (float(first_grad) < 0) == (push == "up")
  scales = [float(m["logit_scale"]) for _, _, m in history]
  assert all(1.0 <= s <= clip.MAX_SCALE for s in scales)
  assert float(clip.logit_scale(last_params[0])) == scales[-1]
  edge = (clip.MAX_SCALE if push == "up" else 1.0)
  assert scales[-1] == edge and float(clip.logit_scale(1e6 if push == "up" else -1e6)) == edge
  # Past the edge: the parameter has left the clamp and gets no gradient at all.
  assert not 0.0 <= float(last_params[0]) <= math.log(clip.MAX_SCALE)
  assert float(last_grad[0]) == 0.0
  np.testing.assert_allclose(last_metrics["temperature"], 1 / edge, rtol=1e-6)


@pytest.mark.parametrize("push", ["up", "down"])
def test_siglip_scale_and_bias_are_learned_and_clamped(push):
  if push == "up":  # a single pair, alike: only a positive, so both grow
    x = _normal(8, (1, 6))
    y = x + _normal(9, (1, 6), 0.3)
  else:  # identical rows: the negatives outnumber the positives, so both shrink
    x = y = jnp.ones((4, 6))
  params = (jnp.float32(siglip.INIT_LOG_SCALE), jnp.float32(siglip.INIT_BIAS))
  history = _descend(siglip.loss, x, y, params, lr=1e4)
  first_grads, (last_params, last_grads, _) = history[0][1], history[-1]
  assert all(float(g) != 0.0 and (float(g) < 0) == (push == "up") for g in first_grads)
  for _, _, m in history:
    assert 1.0 <= float(m["logit_scale"]) <= siglip.MAX_SCALE
    assert -siglip.MAX_ABS_BIAS <= float(m["bias"]) <= siglip.MAX_ABS_BIAS
  sign = 1.0 if push == "up" else -1.0
  assert float(siglip.logit_scale(last_params[0])) == (siglip.MAX_SCALE if sign > 0 else 1.0)
  assert float(siglip.logit_bias(last_params[1])) == sign * siglip.MAX_ABS_BIAS
  assert sign * float(last_params[1]) > siglip.MAX_ABS_BIAS  # the parameter left the clamp
  assert [float(g) for g in last_grads] == [0.0, 0.0]


# ---------------------------------------------------------------------------------------
# Properties


def test_clip_aligned_separated_pairs_give_zero_loss():
  B, D = 4, 8
  basis = np.eye(D)[:B]  # orthogonal directions: each pair far from every other
  x = jnp.asarray(3.0 * basis, jnp.bfloat16)  # lengths and dtypes of raw projections
  y = jnp.asarray(0.5 * basis + 0.01 * np.eye(D)[B:2 * B], jnp.float32)
  value, metrics = clip.loss(x, y, jnp.float32(math.log(clip.MAX_SCALE)))
  assert value.dtype == jnp.float32
  assert float(value) < 1e-6
  assert float(metrics["x_to_y_accuracy"]) == 1.0 and float(metrics["y_to_x_accuracy"]) == 1.0
  # A small scale cannot separate them: the same pairs cost far more.
  assert float(clip.loss(x, y, jnp.float32(0.0))[0]) > 0.5


def test_clip_is_symmetric_in_the_two_towers():
  x, y = _normal(10, (6, 4)), _normal(11, (6, 4))
  loss_fn = jax.jit(clip.loss)
  s = jnp.float32(clip.INIT_LOG_SCALE)
  (l_xy, m_xy), (l_yx, m_yx) = loss_fn(x, y, s), loss_fn(y, x, s)
  np.testing.assert_allclose(l_xy, l_yx, rtol=1e-6)
  np.testing.assert_allclose(m_xy["x_to_y_accuracy"], m_yx["y_to_x_accuracy"])
  np.testing.assert_allclose(m_xy["y_to_x_accuracy"], m_yx["x_to_y_accuracy"])
  # Not a trivial symmetry: the two directions' accuracies differ here.
  assert float(m_xy["x_to_y_accuracy"]) != float(m_xy["y_to_x_accuracy"])


@pytest.mark.parametrize("n", [3, 6])
def test_siglip_identical_embeddings_at_init_cost_n_log_2(n):
  """Every cosine is 1, so every logit is 10 * 1 - 10 = 0 and each of the n * n pairs costs
  -log sigmoid(0) = log 2: summed over a row's n columns, averaged over rows, n log 2."""
  z = np.random.default_rng(12).normal(size=(1, 5))
  x = jnp.asarray(np.repeat(z, n, 0) * np.arange(1, n + 1)[:, None], jnp.float32)  # lengths vary
  y = jnp.asarray(np.repeat(z, n, 0) * 0.1, jnp.float32)
  value, metrics = siglip.loss(x, y, siglip.INIT_LOG_SCALE, siglip.INIT_BIAS)
  np.testing.assert_allclose(value, n * math.log(2.0), rtol=1e-6)
  np.testing.assert_allclose([metrics["positive_logit"], metrics["negative_logit"]], [0, 0],
                             atol=1e-5)
  np.testing.assert_allclose([metrics["logit_scale"], metrics["bias"]], [10.0, -10.0], rtol=1e-6)
