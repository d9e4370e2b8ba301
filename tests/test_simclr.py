"""NT-Xent against NumPy, and the same loss whatever the device count (jit and shard_map)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ssl_jax.errors import ConfigError
from ssl_jax.objectives import simclr

from conftest import tiny_simclr_config

N_DEV = 8


def numpy_nt_xent(z1, z2, temperature):
  """Textbook NT-Xent: each of the 2N rows against the other 2N - 1, positive = other view."""
  z = np.concatenate([z1, z2]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  n = len(z1)
  losses, correct = [], []
  for i in range(2 * n):
    positive = (i + n) % (2 * n)
    sims = {j: z[i] @ z[j] / temperature for j in range(2 * n) if j != i}
    log_denominator = np.log(sum(np.exp(s) for s in sims.values()))
    losses.append(log_denominator - sims[positive])
    correct.append(max(sims, key=sims.get) == positive)
  return np.mean(losses), np.mean(correct)


def _embeddings(n=16, d=6, noise=0.7):
  z1 = jax.random.normal(jax.random.key(0), (n, d))
  return z1, z1 + noise * jax.random.normal(jax.random.key(1), (n, d))


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_nt_xent_matches_numpy(temperature):
  z1, z2 = _embeddings()
  loss_fn = jax.jit(simclr.nt_xent, static_argnums=2)
  loss, metrics = loss_fn(z1, z2, temperature)
  want_loss, want_acc = numpy_nt_xent(np.asarray(z1), np.asarray(z2), temperature)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  np.testing.assert_allclose(metrics["contrastive_accuracy"], want_acc)
  # Identical views are easier: a lower loss, and every row finds its positive.
  same_loss, same_metrics = loss_fn(z1, z1, temperature)
  assert float(same_loss) < float(loss) and float(same_metrics["contrastive_accuracy"]) == 1.0


def test_jit_on_8_devices_equals_1_device():
  assert jax.device_count() == N_DEV
  z1, z2 = _embeddings()
  loss_fn = jax.jit(lambda a, b: simclr.nt_xent(a, b, 0.2)[0])
  one = loss_fn(jax.device_put(z1, jax.devices()[0]), jax.device_put(z2, jax.devices()[0]))
  sharding = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), P("data"))
  a, b = jax.device_put(z1, sharding), jax.device_put(z2, sharding)
  assert len(a.addressable_shards) == N_DEV and a.addressable_shards[0].data.shape[0] == 2
  np.testing.assert_allclose(loss_fn(a, b), one, rtol=1e-6)


def test_shard_map_with_axis_name_equals_1_device():
  """Each device holds 2 examples; all-gathered negatives give the global loss and,
  with gradients averaged over the axis (as step.py does under pmap), the global gradient."""
  z1, z2 = _embeddings()
  w = jax.random.normal(jax.random.key(2), (6, 5))  # a replicated projection to train

  def global_loss(w):
    return simclr.nt_xent(z1 @ w, z2 @ w, 0.2)[0]

  want_loss, want_grad = jax.value_and_grad(global_loss)(w)

  def per_device(w_1xDxE, a, b):
    # Each device has its own copy of w, as under pmap (a replicated, not shared, value).
    (_, metrics), grad = jax.value_and_grad(
        lambda w: simclr.nt_xent(a @ w, b @ w, 0.2, axis_name="d"), has_aux=True)(w_1xDxE[0])
    return metrics["loss"], jax.lax.pmean(grad, "d")

  mesh = Mesh(np.array(jax.devices()), ("d",))
  mapped = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P("d"), P("d"), P("d")),
                                 out_specs=(P(), P())))
  loss, grad = mapped(jnp.broadcast_to(w, (N_DEV, *w.shape)), z1, z2)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-6)
  # Without the gather each device would only see its own 2 examples: a different loss.
  local_only = jax.jit(jax.shard_map(
      lambda a, b: jax.lax.pmean(simclr.nt_xent(a, b, 0.2)[0], "d"), mesh=mesh,
      in_specs=(P("d"), P("d")), out_specs=P()))(z1 @ w, z2 @ w)
  assert abs(float(local_only) - float(want_loss)) > 0.1


def test_simclr_task_loss_is_global_on_8_devices(data_dir):
  """The whole task loss (on-device views, encoder, projection head with batch norm,
  NT-Xent) on a batch sharded over 8 devices equals the 1-device loss, batch statistics
  included. (A one-block ViT compiles fast; the ResNet's batch norm is tested below.)"""
  from ssl_jax.data import pipeline
  from ssl_jax.tasks import make_task
  task = make_task(tiny_simclr_config(data_dir, **{
      "model.name": "vit", "model.depth": 1, "model.width": 8, "model.num_heads": 2}))
  params, model_state = task.init(jax.random.key(0))
  batch = pipeline.to_iterator(task.train_data).__next__()
  assert batch["image"].dtype == np.uint8 and batch["image"].shape == (16, 8, 8, 3)
  key = jax.random.key(1)
  loss_fn = jax.jit(task.loss_fn)
  one_loss, (one_metrics, one_state) = loss_fn(
      params, model_state, jax.device_put(batch, jax.devices()[0]), key)
  sharding = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), P("data"))
  loss, (metrics, state) = loss_fn(params, model_state, jax.device_put(batch, sharding), key)
  np.testing.assert_allclose(loss, one_loss, rtol=1e-5)
  np.testing.assert_allclose(metrics["contrastive_accuracy"], one_metrics["contrastive_accuracy"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), state,
               one_state)
  # Batch statistics moved; the views differ from step to step.
  assert not np.allclose(jax.tree.leaves(state)[0], jax.tree.leaves(model_state)[0])
  assert np.isfinite(float(loss)) and float(loss) > 0


@pytest.mark.parametrize("change,match", [
    ({"simclr.temperature": 0.0}, "temperature"),
    ({"model.name": "vit", "data.image_size": 10}, "patch_size"),
    ({"batch_size": 4096}, "fewer than"),
    ({"augment.preset": "crop_flip"}, "two views"),
    ({"model.depth": 19}, "ResNet depth"),
])
def test_bad_configs_are_config_errors(data_dir, change, match):
  from ssl_jax.tasks import make_task
  config = tiny_simclr_config(data_dir)
  with config.unlocked():
    config.model.patch_size = 4
    config.model.num_heads = 2
    config.model.pool = "cls"
  for key, value in change.items():
    section, _, field = key.rpartition(".")
    (config[section] if section else config)[field] = value
  with pytest.raises(ConfigError, match=match):
    make_task(config)


@pytest.mark.parametrize("depth,stem,size,dim", [(18, "cifar", 8, 32), (50, "imagenet", 64, 128),
                                                 (18, "imagenet", 32, 32)])
def test_resnet_shapes(depth, stem, size, dim):
  from ssl_jax.models.resnet import ResNet
  model = ResNet(depth=depth, stem=stem, width=4)
  x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  assert set(variables) == {"params", "batch_stats"}
  assert jax.eval_shape(model.apply, variables, x).shape == (2, model.features_dim) == (2, dim)
  convs = [p for p in jax.tree_util.tree_leaves_with_path(variables["params"])
           if p[1].ndim == 4]
  assert len(convs) == {18: 20, 50: 53}[depth]  # conv layers, projections included
  assert convs[0][1].shape[:2] == ((3, 3) if stem == "cifar" else (7, 7))


def test_resnet_batch_norm_train_and_eval_modes():
  from ssl_jax.models.resnet import ResNet
  model = ResNet(depth=18, stem="cifar", width=4)
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
  changed = x.at[1:].multiply(3.0)  # every example but the first
  # Random variables drawn with NumPy: an eager model.init compiles op by op (slow on CPU).
  rng = np.random.default_rng(0)
  variables = jax.tree_util.tree_map_with_path(
      lambda path, s: (np.ones(s.shape, np.float32) if path[-1].key in ("scale", "var")
                       else rng.normal(size=s.shape).astype(np.float32) * 0.2),
      jax.eval_shape(model.init, jax.random.key(1), x[:1]))

  @jax.jit  # one compilation for all four applications
  def both_modes(variables):
    train = lambda x: model.apply(variables, x, train=True, mutable=["batch_stats"])
    (features, updated), (features_changed, _) = train(x), train(changed)
    return (features[0], features_changed[0], model.apply(variables, x)[0],
            model.apply(variables, changed)[0], updated)

  train_first, train_changed, eval_first, eval_changed, updated = both_modes(variables)
  assert not np.allclose(jax.tree.leaves(updated)[0], jax.tree.leaves(variables["batch_stats"])[0])
  # Train mode normalises with the batch's statistics: the others change example 0's features.
  assert not np.allclose(train_first, train_changed)
  # Eval mode uses the running statistics: they do not.
  np.testing.assert_allclose(eval_first, eval_changed, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_features(pool):
  from ssl_jax.models.vit import ViT
  model = ViT(patch_size=4, depth=2, width=16, num_heads=2, pool=pool)
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 3))
  variables = jax.eval_shape(model.init, jax.random.key(1), x)
  assert set(variables) == {"params"}  # no batch statistics
  assert ("cls" in variables["params"]) == (pool == "cls")
  assert variables["params"]["pos_embedding"].shape == (1, 4 + (pool == "cls"), 16)
  assert jax.eval_shape(model.apply, variables, x).shape == (3, 16)
  # (test_evaluate.py trains and evaluates a ViT end to end)
