"""On-device augmentations: shapes, value range, determinism per key, and each op's meaning."""
import colorsys
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.data import augment
from ssl_jax.errors import ConfigError

B, S = 4, 12


@pytest.fixture(scope="module")
def images_uint8():
  return jax.random.randint(jax.random.key(0), (B, S, S, 3), 0, 256).astype(jnp.uint8)


@pytest.fixture(scope="module")
def draw():
  return jax.jit(augment.augment_batch, static_argnums=(2, 3))


@pytest.mark.parametrize("preset,out_size", [("simclr", S), ("byol", 8)])
def test_views_keep_shape_and_range_and_are_deterministic_per_key(images_uint8, draw, preset,
                                                                   out_size):
  specs = augment.views(preset)
  views = draw(jax.random.key(1), images_uint8, specs, out_size)
  again = draw(jax.random.key(1), images_uint8, specs, out_size)
  other = draw(jax.random.key(2), images_uint8, specs, out_size)
  assert len(views) == 2
  for v, a, o in zip(views, again, other):
    assert v.shape == (B, out_size, out_size, 3) and v.dtype == jnp.float32
    assert float(v.min()) >= 0.0 and float(v.max()) <= 1.0
    np.testing.assert_array_equal(v, a)
    assert not np.allclose(v, o)
  assert not np.allclose(views[0], views[1])  # the two views differ


def test_each_example_has_its_own_key(images_uint8, draw):
  """Changing one example leaves the other examples' views unchanged."""
  specs = augment.views("simclr")
  changed = images_uint8.at[1].set(255 - images_uint8[1])
  a = draw(jax.random.key(3), images_uint8, specs, S)[0]
  b = draw(jax.random.key(3), changed, specs, S)[0]
  np.testing.assert_array_equal(np.delete(np.asarray(a), 1, 0), np.delete(np.asarray(b), 1, 0))
  assert not np.allclose(a[1], b[1])
  # ... and the examples of a batch are not augmented alike.
  same = jnp.broadcast_to(images_uint8[:1], images_uint8.shape)
  views = draw(jax.random.key(3), same, specs, S)[0]
  assert not np.allclose(views[0], views[1])


def test_full_window_crop_is_identity_and_flip_mirrors(images_uint8):
  x = augment.to_float(images_uint8[0])
  still = augment.ViewSpec(crop_min_scale=1.0, crop_ratio=(1.0, 1.0), flip_prob=1.0,
                           jitter_prob=0.0, grayscale_prob=0.0)

  @jax.jit  # one compilation instead of one per eager op
  def ops(x):
    return dict(
        full=augment.crop_and_resize(x, 0.0, 0.0, S, S, S),
        full_random=augment.random_resized_crop(jnp.full(4, 0.3), x, S, (1.0, 1.0), (1.0, 1.0)),
        # A centred half-size window at half size is exactly that window.
        half=augment.crop_and_resize(x, S / 4, S / 4, S / 2, S / 2, S // 2),
        flipped=augment.random_flip(0.5, x, 1.0),
        kept=augment.random_flip(0.5, x, 0.0),
        # A view with every other op switched off is the flip alone, or the image.
        view_flipped=augment.augment_view(jax.random.key(0), x, still, S),
        view_kept=augment.augment_view(jax.random.key(0), x,
                                       dataclasses.replace(still, flip_prob=0.0), S))

  out = ops(x)
  np.testing.assert_allclose(out["full"], x, atol=1e-6)
  np.testing.assert_allclose(out["full_random"], x, atol=1e-6)
  np.testing.assert_allclose(out["half"], x[S // 4:S // 4 + S // 2, S // 4:S // 4 + S // 2],
                             atol=1e-6)
  np.testing.assert_array_equal(out["flipped"], x[:, ::-1])
  np.testing.assert_array_equal(out["kept"], x)
  np.testing.assert_allclose(out["view_flipped"], x[:, ::-1], atol=1e-6)
  np.testing.assert_allclose(out["view_kept"], x, atol=1e-6)


def test_colour_ops(images_uint8):
  x = augment.to_float(images_uint8[0])
  red = jnp.zeros((1, 1, 3)).at[..., 0].set(1.0)

  @jax.jit
  def ops(x):
    hsv = augment.rgb_to_hsv(x)
    return dict(
        gray=augment.to_grayscale(x), desaturated=augment.adjust_saturation(x, 0.0),
        flat=augment.adjust_contrast(x, 0.0), darker=augment.adjust_brightness(x, 0.5),
        no_jitter=augment.color_jitter(jax.random.uniform(jax.random.key(5), (8,)), x,
                                       0.0, 0.0, 0.0, 0.0),
        hsv=hsv, round_trip=augment.hsv_to_rgb(hsv), full_turn=augment.adjust_hue(x, 1.0),
        cyan=augment.adjust_hue(red, 0.5)[0, 0])

  out = ops(x)
  gray = out["gray"]
  np.testing.assert_allclose(gray[..., 0], gray[..., 2])
  np.testing.assert_allclose(out["desaturated"], gray, atol=1e-6)
  np.testing.assert_allclose(out["flat"], np.full(x.shape, gray.mean()), atol=1e-6)
  np.testing.assert_allclose(out["darker"], x * 0.5, atol=1e-6)
  np.testing.assert_allclose(out["no_jitter"], x, atol=1e-5)  # zero strengths change nothing
  # HSV agrees with the standard library and round-trips.
  for i, j in [(0, 0), (3, 7), (11, 2)]:
    np.testing.assert_allclose(out["hsv"][i, j], colorsys.rgb_to_hsv(*np.asarray(x[i, j])),
                               atol=1e-5)
  np.testing.assert_allclose(out["round_trip"], x, atol=1e-5)
  # A full turn of hue is the identity; half a turn of pure red is cyan.
  np.testing.assert_allclose(out["full_turn"], x, atol=1e-5)
  np.testing.assert_allclose(out["cyan"], [0.0, 1.0, 1.0], atol=1e-5)


def test_blur_and_solarize(images_uint8):
  x = augment.to_float(images_uint8[0])
  flat = jnp.full((S, S, 3), 0.3)
  blur = jax.jit(augment.gaussian_blur, static_argnums=2)
  np.testing.assert_allclose(blur(flat, 1.5, 2), flat, atol=1e-6)
  blurred = blur(x, 1.5, 2)
  assert float(jnp.var(blurred)) < 0.5 * float(jnp.var(x))  # noise is smoothed
  np.testing.assert_allclose(blurred.mean(), x.mean(), atol=0.02)
  np.testing.assert_allclose(augment.solarize(jnp.array([0.2, 0.7])), [0.2, 0.3], atol=1e-6)


def test_presets_follow_the_published_recipes():
  simclr = augment.views("simclr")
  assert simclr[0] == simclr[1]
  assert (simclr[0].brightness, simclr[0].hue, simclr[0].jitter_prob) == (0.8, 0.2, 0.8)
  assert (simclr[0].grayscale_prob, simclr[0].blur_prob, simclr[0].crop_min_scale) == (0.2, 0.5, 0.08)
  byol = augment.views("byol")
  assert (byol[0].blur_prob, byol[1].blur_prob) == (1.0, 0.1)
  assert (byol[0].solarize_prob, byol[1].solarize_prob) == (0.0, 0.2)
  assert (byol[0].saturation, byol[0].hue) == (0.2, 0.1)
  cifar = augment.views("simclr", strength=0.5, blur=False, flip=False, crop_min_scale=0.2)
  assert dataclasses.astuple(cifar[0])[:3] == (0.2, 1.0, (3 / 4, 4 / 3))
  assert (cifar[0].brightness, cifar[0].blur_prob, cifar[0].flip_prob) == (0.4, 0.0, 0.0)
  with pytest.raises(ConfigError, match="preset"):
    augment.views("simclr_v9")


def test_grid_shows_originals_then_views(images_uint8):
  from ssl_jax import augment_grid
  pixels = augment_grid.grid(images_uint8[:2], augment.views("byol"), S, 3, jax.random.key(0),
                             zoom=2)
  T = 2 * S
  gap = augment_grid.GAP
  assert pixels.shape == (2 * (T + gap) - gap, 4 * (T + gap) - gap, 3)
  assert pixels.dtype == np.uint8
  first = pixels[:T, :T].reshape(S, 2, S, 2, 3)[:, 0, :, 0]
  np.testing.assert_allclose(first, np.asarray(images_uint8[0]), atol=1)
