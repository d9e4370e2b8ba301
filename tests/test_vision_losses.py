"""The vision SSL objectives (MAE, DINO, MoCo v3, Barlow Twins, VICReg, SimSiam) against
NumPy references written from the papers, their defining properties (what gets no
gradient, what is ignored), the global batch under a device axis, and the EMA teacher.
The model pieces they rely on: tests/test_vision_models.py."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from ssl_jax.objectives import barlow_twins, dino, mae, mocov3, simsiam, teacher, vicreg

N_DEV = 8
RTOL = 1e-5


def _normal(seed, shape, scale=1.0):
  # NumPy draws: jax.random would compile a generator for every shape (seconds on 2 cores).
  return jnp.asarray(scale * np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _params(module, *args, seed=0, scale=0.3):
  """Random variables of module.init's shapes, without compiling its initialisers."""
  shapes = jax.eval_shape(module.init, jax.random.key(0), *args)
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda s: jnp.asarray(scale * rng.normal(size=s.shape), jnp.float32), shapes)


def _f64(x):
  return np.asarray(x, np.float64)


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _max_abs(tree):
  return max(float(jnp.abs(g).max()) for g in jax.tree.leaves(tree))


# ---------------------------------------------------------------------------------------
# NumPy references, written from the papers' definitions (float64, explicit loops).


def numpy_patchify(images, p):
  B, H, W, C = images.shape
  out = np.zeros((B, (H // p) * (W // p), p * p * C))
  for b in range(B):
    for i in range(H // p):
      for j in range(W // p):  # row-major patch order, pixels row-major inside a patch
        out[b, i * (W // p) + j] = images[b, i * p:(i + 1) * p, j * p:(j + 1) * p].reshape(-1)
  return out


def numpy_mae(pred, patches, mask):
  """MSE on the hidden patches only, each target patch standardised by its own pixels."""
  total, count = 0.0, 0
  for b in range(pred.shape[0]):
    for n in range(pred.shape[1]):
      if mask[b, n] == 1:
        t = patches[b, n]
        t = (t - t.mean()) / np.sqrt(t.var(ddof=1) + 1e-6)  # unbiased, as MAE's code
        total += np.mean((pred[b, n] - t) ** 2)
        count += 1
  return total / count


def numpy_dino(student, teacher_out, center, student_temp, teacher_temp):
  """Mean over the batch and over (teacher view g, student view v != g) of H(P_t^g, P_s^v)."""
  B, V, _ = student.shape
  G = teacher_out.shape[1]
  per_example = []
  for b in range(B):
    ces = []
    for g in range(G):
      t = np.exp(_log_softmax((teacher_out[b, g] - center) / teacher_temp))
      for v in range(V):
        if v != g:
          ces.append(-np.sum(t * _log_softmax(student[b, v] / student_temp)))
    per_example.append(np.mean(ces))
  return np.mean(per_example)


def numpy_ctr(q, k, temperature):
  """InfoNCE of each query against every key, its positive the key of the same row."""
  q = q / np.linalg.norm(q, axis=1, keepdims=True)
  k = k / np.linalg.norm(k, axis=1, keepdims=True)
  losses, correct = [], []
  for i in range(len(q)):
    logits = np.array([q[i] @ k[j] / temperature for j in range(len(k))])
    losses.append(-_log_softmax(logits)[i])
    correct.append(np.argmax(logits) == i)
  return 2 * temperature * np.mean(losses), np.mean(correct)


def numpy_mocov3(q1, q2, k1, k2, temperature):
  (la, ca), (lb, cb) = numpy_ctr(q1, k2, temperature), numpy_ctr(q2, k1, temperature)
  return la + lb, (ca + cb) / 2


def numpy_barlow(z1, z2, lam):
  n, d = z1.shape
  std = lambda z: (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)  # batch norm, no affine
  a, b = std(z1), std(z2)
  c = np.array([[np.sum(a[:, i] * b[:, j]) / n for j in range(d)] for i in range(d)])
  return sum((1 - c[i, i]) ** 2 + lam * sum(c[i, j] ** 2 for j in range(d) if j != i)
             for i in range(d))


def numpy_vicreg(z1, z2):
  n, d = z1.shape
  invariance = np.mean((z1 - z2) ** 2)
  hinge = lambda z: np.mean(np.maximum(0.0, 1.0 - np.sqrt(z.var(0, ddof=1) + 1e-4)))
  variance = (hinge(z1) + hinge(z2)) / 2

  def off_diagonal(z):
    zc = z - z.mean(0)
    cov = zc.T @ zc / (n - 1)
    return sum(cov[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / d

  covariance = off_diagonal(z1) + off_diagonal(z2)
  return 25 * invariance + 25 * variance + covariance, (invariance, variance, covariance)


def numpy_simsiam(p1, p2, z1, z2):
  cos = lambda a, b: np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
  return np.mean(-(cos(p1, z2) + cos(p2, z1)) / 2)


# ---------------------------------------------------------------------------------------
# MAE


def test_patchify_is_row_major_patches():
  images = _normal(0, (2, 4, 6, 3))
  got = mae.patchify(images, 2)
  assert got.shape == (2, 6, 12)
  np.testing.assert_allclose(got, numpy_patchify(_f64(images), 2), rtol=0, atol=0)


def test_mae_loss_matches_numpy():
  B, N, p, C = 3, 4, 2, 3
  images_BxHxWxC = _normal(0, (B, 4, 4, C))
  pred_BxNxP = _normal(1, (B, N, p * p * C))
  _, mask_BxN = mae.random_keep(jax.random.split(jax.random.key(2), B), N, 0.5)
  target = mae.pixel_targets(mae.patchify(images_BxHxWxC, p))
  got = jax.jit(mae.mae_loss)(pred_BxNxP, target, mask_BxN)
  want = numpy_mae(_f64(pred_BxNxP), numpy_patchify(_f64(images_BxHxWxC), p), _f64(mask_BxN))
  np.testing.assert_allclose(got, want, rtol=RTOL)
  # norm_pix=False: the raw pixels are the targets.
  np.testing.assert_array_equal(mae.pixel_targets(target, norm_pix=False), target)


def test_mae_ignores_visible_patches():
  B, N, Pd = 4, 8, 5
  keep_BxK, mask_BxN = mae.random_keep(jax.random.split(jax.random.key(0), B), N, 0.75)
  pred, target = _normal(1, (B, N, Pd)), _normal(2, (B, N, Pd))
  loss_fn = jax.jit(mae.mae_loss)
  loss = loss_fn(pred, target, mask_BxN)
  visible_BxNx1 = (1.0 - mask_BxN)[..., None]
  # Anything at the visible patches, predictions or targets, leaves the loss as it is.
  junk = _normal(3, (B, N, Pd), scale=100.0)
  assert float(loss_fn(pred + visible_BxNx1 * junk, target, mask_BxN)) == float(loss)
  assert float(loss_fn(pred, target + visible_BxNx1 * junk, mask_BxN)) == float(loss)
  # ...but the hidden ones count.
  hidden_BxNx1 = mask_BxN[..., None]
  assert float(loss_fn(pred + hidden_BxNx1 * junk, target, mask_BxN)) != float(loss)
  grad = jax.jit(jax.grad(mae.mae_loss))(pred, target, mask_BxN)
  visible = np.zeros((B, N), bool)  # the kept patches, from keep_BxK itself
  np.put_along_axis(visible, np.asarray(keep_BxK), True, 1)
  assert np.all(np.asarray(grad)[visible] == 0.0)
  assert np.all(np.abs(np.asarray(grad)[~visible]).max(-1) > 0)


@pytest.mark.parametrize("num_patches,ratio", [(16, 0.75), (49, 0.75), (10, 0.4)])
def test_random_keep_draws_distinct_patches_per_example(num_patches, ratio):
  B = 6
  keep_BxK, mask_BxN = mae.random_keep(jax.random.split(jax.random.key(0), B), num_patches,
                                       ratio)
  keep, mask = np.asarray(keep_BxK), np.asarray(mask_BxN)
  K = round(num_patches * (1 - ratio))
  assert keep.shape == (B, K) and mask.shape == (B, num_patches)
  for b in range(B):
    assert len(set(keep[b])) == K and keep[b].min() >= 0 and keep[b].max() < num_patches
    want = np.ones(num_patches)
    want[keep[b]] = 0
    np.testing.assert_array_equal(mask[b], want)  # 1 exactly on the hidden patches
  # Each example draws its own subset.
  assert len({tuple(sorted(row)) for row in keep}) > 1


# ---------------------------------------------------------------------------------------
# DINO


@pytest.mark.parametrize("G,V", [(2, 2), (2, 5)])
def test_dino_loss_matches_numpy(G, V):
  B, K = 4, 7
  student, teacher_out = _normal(0, (B, V, K), 3.0), _normal(1, (B, G, K), 3.0)
  center = _normal(2, (K,))
  got = jax.jit(dino.dino_loss)(student, teacher_out, center, 0.1, 0.04)
  want = numpy_dino(_f64(student), _f64(teacher_out), _f64(center), 0.1, 0.04)
  np.testing.assert_allclose(got, want, rtol=RTOL)


def test_dino_pairs_only_different_views():
  """With 2 global views and no local ones, the loss is the mean of exactly the two cross
  pairs (teacher 0 -> student 1, teacher 1 -> student 0), never a view against itself."""
  B, K = 3, 5
  student, teacher_out = _normal(0, (B, 2, K)), _normal(1, (B, 2, K))
  center = jnp.zeros(K)
  probs = np.asarray(dino.teacher_probs(teacher_out, center, 0.5), np.float64)
  logp = _log_softmax(_f64(student) / 0.2)
  cross = lambda g, v: -np.sum(probs[:, g] * logp[:, v], -1)
  want = np.mean((cross(0, 1) + cross(1, 0)) / 2)
  np.testing.assert_allclose(dino.dino_loss(student, teacher_out, center, 0.2, 0.5), want,
                             rtol=RTOL)
  # Teacher probs: the centred, sharpened softmax.
  np.testing.assert_allclose(probs, np.exp(_log_softmax(_f64(teacher_out) / 0.5)), rtol=RTOL)


def test_dino_gradient_reaches_the_student_only():
  B, G, V, K = 2, 2, 4, 6
  student, teacher_out = _normal(0, (B, V, K)), _normal(1, (B, G, K))
  center = _normal(2, (K,))
  g_student, g_teacher = jax.jit(lambda s, t, c: jax.grad(dino.dino_loss, argnums=(0, 1))(
      s, t, c, 0.1, 0.04))(student, teacher_out, center)
  assert _max_abs(g_teacher) == 0.0
  assert float(jnp.abs(g_student).max()) > 0


def test_dino_center_and_teacher_temperature():
  B, G, K = 4, 2, 5
  teacher_out, center = _normal(0, (B, G, K)), _normal(1, (K,))
  want = 0.9 * _f64(center) + 0.1 * _f64(teacher_out).reshape(B * G, K).mean(0)
  np.testing.assert_allclose(dino.update_center(center, teacher_out, 0.9), want, rtol=RTOL)
  # Linear warmup of the teacher temperature, then constant.
  temps = [float(dino.teacher_temperature(s, 0.04, 0.07, 10)) for s in (0, 5, 10, 30)]
  np.testing.assert_allclose(temps, [0.04, 0.055, 0.07, 0.07], rtol=RTOL)
  np.testing.assert_allclose(dino.teacher_temperature(0, 0.04, 0.07, 0), 0.07, rtol=RTOL)


# ---------------------------------------------------------------------------------------
# MoCo v3


@pytest.mark.parametrize("temperature", [0.2, 1.0])
def test_mocov3_loss_matches_numpy(temperature):
  B, D = 8, 6
  q1, q2, k1, k2 = (_normal(s, (B, D)) for s in range(4))
  loss, acc = jax.jit(mocov3.mocov3_loss, static_argnums=4)(q1, q2, k1, k2, temperature)
  want_loss, want_acc = numpy_mocov3(*map(_f64, (q1, q2, k1, k2)), temperature)
  np.testing.assert_allclose(loss, want_loss, rtol=RTOL)
  np.testing.assert_allclose(acc, want_acc, rtol=RTOL)


def test_mocov3_keys_get_no_gradient_and_matching_keys_are_found():
  B, D = 8, 6
  q1, q2, k1, k2 = (_normal(s, (B, D)) for s in range(4))
  grads = jax.jit(jax.grad(lambda *a: mocov3.mocov3_loss(*a, 0.2)[0], argnums=(0, 1, 2, 3)))(
      q1, q2, k1, k2)
  assert _max_abs(grads[2:]) == 0.0 and _max_abs(grads[:2]) > 0
  # The keys are the queries' other views: identical embeddings are all found.
  loss_fn = jax.jit(lambda *a: mocov3.mocov3_loss(*a, 0.05))
  loss, acc = loss_fn(q1, q2, q2, q1)
  assert float(acc) == 1.0
  assert float(loss) < float(loss_fn(q1, q2, k1, k2)[0])


# ---------------------------------------------------------------------------------------
# Barlow Twins, VICReg, SimSiam


def test_barlow_twins_matches_numpy():
  z1 = _normal(0, (8, 6))
  z2 = z1 + _normal(1, (8, 6), 0.5)
  for lam in (0.0051, 0.5):
    got = jax.jit(barlow_twins.barlow_twins_loss, static_argnums=2)(z1, z2, lam)
    np.testing.assert_allclose(got, numpy_barlow(_f64(z1), _f64(z2), lam), rtol=RTOL)


def test_barlow_twins_is_zero_for_identical_decorrelated_features():
  # Centred columns, orthogonalised: zero mean, uncorrelated; scaled to unit variance.
  n, d = 16, 6
  a = np.random.default_rng(0).normal(size=(n, d))
  q, _ = np.linalg.qr(a - a.mean(0))
  z = jnp.asarray(q * np.sqrt(n), jnp.float32)
  np.testing.assert_allclose(barlow_twins.cross_correlation(z, z), np.eye(d), atol=1e-4)
  assert float(barlow_twins.barlow_twins_loss(z, z, 0.5)) < 1e-6
  # Correlated or disagreeing features are penalised.
  assert float(barlow_twins.barlow_twins_loss(z, z[::-1], 0.5)) > 0.1
  z_corr = z.at[:, 1].set(z[:, 0])
  assert float(barlow_twins.barlow_twins_loss(z_corr, z_corr, 0.5)) > 0.1


def test_vicreg_matches_numpy():
  z1 = _normal(0, (8, 6), 0.7)
  z2 = z1 + _normal(1, (8, 6), 0.5)
  loss, terms = jax.jit(vicreg.vicreg_loss)(z1, z2)
  want_loss, (inv, var, cov) = numpy_vicreg(_f64(z1), _f64(z2))
  np.testing.assert_allclose(loss, want_loss, rtol=RTOL)
  np.testing.assert_allclose([terms["invariance"], terms["variance"], terms["covariance"]],
                             [inv, var, cov], rtol=RTOL)
  assert var > 0  # the 0.7 scale puts some stds under 1: the hinge is exercised


def test_vicreg_variance_hinge():
  n, d = 16, 4
  a = np.random.default_rng(0).normal(size=(n, d))
  wide = jnp.asarray(2.0 * (a - a.mean(0)) / a.std(0), jnp.float32)  # every std is 2
  assert float(vicreg.vicreg_terms(wide, wide)["variance"]) == 0.0
  # Collapsed to a constant: std sqrt(1e-4) = 0.01, the hinge is 0.99 on every feature.
  flat = jnp.ones((n, d)) * 3.0
  np.testing.assert_allclose(vicreg.vicreg_terms(flat, flat)["variance"], 0.99, rtol=RTOL)


def test_simsiam_gradient_is_finite_at_a_zero_prediction():
  # A predictor row whose ReLUs are all off outputs exactly 0; its gradient must stay finite.
  p = jnp.zeros((2, 4)).at[1].set(1.0)
  z = _normal(0, (2, 4))
  grads = jax.grad(simsiam.simsiam_loss, argnums=(0, 1))(p, p, z, z)
  assert all(np.isfinite(np.asarray(g)).all() for g in grads)


def test_simsiam_matches_numpy_and_stops_gradient_at_z():
  B, D = 8, 6
  p1, p2, z1, z2 = (_normal(s, (B, D)) for s in range(4))
  np.testing.assert_allclose(jax.jit(simsiam.simsiam_loss)(p1, p2, z1, z2),
                             numpy_simsiam(*map(_f64, (p1, p2, z1, z2))), rtol=RTOL)
  grads = jax.jit(jax.grad(simsiam.simsiam_loss, argnums=(0, 1, 2, 3)))(p1, p2, z1, z2)
  assert _max_abs(grads[2:]) == 0.0 and _max_abs(grads[:2]) > 0
  # The minimum, -1, when the predictions point along the other branch.
  np.testing.assert_allclose(simsiam.simsiam_loss(3 * z2, 0.5 * z1, z1, z2), -1.0, rtol=RTOL)


# ---------------------------------------------------------------------------------------
# The EMA teacher


def test_momentum_schedule():
  total, base = 20, 0.996
  ms = np.array([float(teacher.momentum(s, total, base)) for s in range(total + 1)])
  np.testing.assert_allclose(ms[0], base, rtol=1e-7)
  np.testing.assert_allclose(ms[-1], 1.0, rtol=1e-7)
  assert np.all(np.diff(ms) > 0)  # strictly rising, a half cosine
  # BYOL's half cosine: 1 - (1 - base) * (cos(pi * k / K) + 1) / 2.
  want = 1 - (1 - base) * (np.cos(np.pi * np.arange(total + 1) / total) + 1) / 2
  np.testing.assert_allclose(ms, want, rtol=1e-6)
  np.testing.assert_allclose(teacher.momentum(3 * total, total, base), 1.0, rtol=1e-7)


def test_follow_moves_only_the_target_params_by_the_ema():
  online = {"w": _normal(0, (3, 2)), "b": _normal(1, (2,))}
  target_params = {"w": _normal(2, (3, 2)), "b": _normal(3, (2,))}
  stats = {"mean": _normal(4, (2,))}
  center = _normal(5, (4,))
  state = {"target": {"params": target_params, "batch_stats": stats}, "center": center}
  new = teacher.follow(state, online, step=5, total_steps=20, base=0.9)
  m = float(teacher.momentum(5, 20, 0.9))
  assert 0.9 < m < 1.0
  for name in ("w", "b"):
    want = m * _f64(target_params[name]) + (1 - m) * _f64(online[name])
    np.testing.assert_allclose(new["target"]["params"][name], want, rtol=1e-6)
  assert new["target"]["batch_stats"] is stats and new["center"] is center
  assert set(new) == set(state) and set(new["target"]) == set(state["target"])


# ---------------------------------------------------------------------------------------
# The global batch under a device axis (8 CPU devices, 2 examples each)


def _mesh():
  return Mesh(np.array(jax.devices()), ("d",))


def _global_vs_sharded(loss_fn):
  """(loss, grad) of loss_fn(z1 @ w, z2 @ w, axis_name) for the whole batch on 1 device and
  with 8 shards (gradients pmean-ed over the axis, as step.py does), and the loss when each
  shard is on its own (no axis)."""
  assert len(jax.devices()) == N_DEV
  z1 = _normal(0, (2 * N_DEV, 6))
  z2 = z1 + _normal(1, (2 * N_DEV, 6), 0.7)
  w = _normal(2, (6, 5))  # a shared linear projection to train
  want = jax.jit(jax.value_and_grad(lambda w: loss_fn(z1 @ w, z2 @ w, None)))(w)

  def per_device(w_1xDxE, a, b):
    # Each device has its own copy of w, as under pmap.
    loss, grad = jax.value_and_grad(lambda w: loss_fn(a @ w, b @ w, "d"))(w_1xDxE[0])
    return jax.lax.pmean(loss, "d"), jax.lax.pmean(grad, "d")

  got = jax.jit(jax.shard_map(per_device, mesh=_mesh(), in_specs=(P("d"), P("d"), P("d")),
                              out_specs=(P(), P())))(
      jnp.broadcast_to(w, (N_DEV, *w.shape)), z1, z2)
  local_only = jax.jit(jax.shard_map(
      lambda a, b: jax.lax.pmean(loss_fn(a, b, None), "d"), mesh=_mesh(),
      in_specs=(P("d"), P("d")), out_specs=P()))(z1 @ w, z2 @ w)
  return want, got, local_only


@pytest.mark.parametrize("name", ["barlow_twins", "vicreg", "mocov3"])
def test_sharded_loss_and_gradient_equal_the_global_batch(name):
  loss_fns = {
      "barlow_twins": lambda a, b, ax: barlow_twins.barlow_twins_loss(a, b, 0.1, axis_name=ax),
      "vicreg": lambda a, b, ax: vicreg.vicreg_loss(a, b, axis_name=ax)[0],
      # Keys from a fixed "momentum" projection of the other view.
      "mocov3": lambda a, b, ax: mocov3.mocov3_loss(a, b, 2 * a + 1, b - 1, 0.2, ax)[0],
  }
  (want_loss, want_grad), (loss, grad), local_only = _global_vs_sharded(loss_fns[name])
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-6)
  # Without the axis each device's statistics / negatives come from its 2 rows only.
  assert abs(float(local_only) - float(want_loss)) > 1e-2 * abs(float(want_loss))


def test_dino_center_over_the_device_axis_is_the_global_mean():
  B, G, K = 2 * N_DEV, 2, 5
  teacher_out, center = _normal(0, (B, G, K)), _normal(1, (K,))
  want = dino.update_center(center, teacher_out, 0.9)
  got = jax.jit(jax.shard_map(lambda t, c: dino.update_center(c, t, 0.9, axis_name="d"),
                              mesh=_mesh(), in_specs=(P("d"), P()), out_specs=P()))(
      teacher_out, center)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  # One device's rows alone give another centre.
  assert not np.allclose(dino.update_center(center, teacher_out[:2], 0.9), want, rtol=1e-3)
