"""Image augmentations as pure JAX functions, run on device inside the train step.

Every random op maps (uniforms, image_HxWxC) -> image, with float images in [0, 1]; a view
draws all its uniforms from one PRNG key per example, so a batch is a `jax.vmap` over keys
and images and the whole pipeline jits.
Random choices (apply or not, random order) are taken with `jnp.where`/`lax.switch` on
traced values: no Python control flow depends on the key.

Presets give the published per-view recipes:
  simclr  Chen et al. 2020, Appendix A: crop (0.08, 1), flip 0.5, colour jitter
          (0.8s, 0.8s, 0.8s, 0.2s) with p 0.8, grayscale 0.2, blur 0.5 (ImageNet).
  byol    Grill et al. 2020, Table 6: jitter (0.4, 0.4, 0.2, 0.1) with p 0.8, grayscale 0.2,
          blur 1.0 / 0.1 and solarize 0.0 / 0.2 for the two views. DINO's and MoCo v3's
          global views are these too; `local_view` gives DINO's small crops.
  mae     He et al. 2022: one view, crop (0.2, 1) and flip, no colour changes.
"""
import dataclasses

import jax
import jax.numpy as jnp

LUMA_WEIGHTS = (0.2989, 0.5870, 0.1140)  # ITU-R 601, as PIL and TF use


@dataclasses.dataclass(frozen=True)
class ViewSpec:
  """How one view is drawn. Frozen, so it can be a static argument of jitted code."""
  crop_min_scale: float = 0.08  # area fraction of the random resized crop
  crop_max_scale: float = 1.0
  crop_ratio: tuple = (3 / 4, 4 / 3)  # aspect ratio range, sampled log-uniformly
  flip_prob: float = 0.5
  jitter_prob: float = 0.8
  brightness: float = 0.4
  contrast: float = 0.4
  saturation: float = 0.4
  hue: float = 0.1
  grayscale_prob: float = 0.2
  blur_prob: float = 0.0
  blur_sigma: tuple = (0.1, 2.0)  # in pixels
  solarize_prob: float = 0.0


def _simclr(strength: float):
  s = strength
  view = ViewSpec(brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s, hue=0.2 * s,
                  blur_prob=0.5)
  return view, view


def _byol(strength: float):
  s = strength
  base = dict(brightness=0.4 * s, contrast=0.4 * s, saturation=0.2 * s, hue=0.1 * s)
  return (ViewSpec(**base, blur_prob=1.0, solarize_prob=0.0),
          ViewSpec(**base, blur_prob=0.1, solarize_prob=0.2))


def _crop_flip(strength: float):
  """Geometry only: the usual light augmentation for supervised fine-tuning."""
  del strength
  return (ViewSpec(crop_min_scale=0.35, jitter_prob=0.0, grayscale_prob=0.0),)


def _mae(strength: float):
  del strength
  return (ViewSpec(crop_min_scale=0.2, jitter_prob=0.0, grayscale_prob=0.0),)


PRESETS = {"simclr": _simclr, "byol": _byol, "crop_flip": _crop_flip, "mae": _mae}


def local_view(global_view: ViewSpec, min_scale: float) -> ViewSpec:
  """DINO's small crops: area (min_scale, the global crops' minimum), the global views'
  colour jitter, blur with p 0.5, no solarize (Caron et al. 2021)."""
  return dataclasses.replace(global_view, crop_min_scale=min_scale,
                             crop_max_scale=global_view.crop_min_scale, blur_prob=0.5,
                             solarize_prob=0.0)


def views(preset: str, *, strength: float = 1.0, crop_min_scale: float | None = None,
          blur: bool = True, flip: bool = True) -> tuple[ViewSpec, ...]:
  """The per-view specs of a preset, with the knobs recipes commonly change.

  `strength` scales colour jitter (SimCLR's s; 0.5 for CIFAR); `blur=False` drops Gaussian
  blur (SimCLR on CIFAR); `flip=False` for data whose meaning flips change (digits).
  """
  from ssl_jax.errors import ConfigError
  if preset not in PRESETS:
    raise ConfigError(f"augment.preset must be one of {', '.join(PRESETS)}, got {preset!r}.")
  if crop_min_scale is not None and not 0 < crop_min_scale <= 1:
    raise ConfigError(f"augment.crop_min_scale must be in (0, 1], got {crop_min_scale}.")
  out = []
  for v in PRESETS[preset](strength):
    changes = {}
    if crop_min_scale is not None:
      changes["crop_min_scale"] = crop_min_scale
    if not blur:
      changes["blur_prob"] = 0.0
    if not flip:
      changes["flip_prob"] = 0.0
    out.append(dataclasses.replace(v, **changes))
  return tuple(out)


# --- geometry -------------------------------------------------------------------------------

def _resample_matrix(start, length, in_size: int, out_size: int):
  """out_size x in_size weights sampling [start, start + length) of an axis bilinearly.

  A tent filter widened by the downscaling factor, so shrinking a large crop averages
  pixels instead of aliasing (the antialiasing of jax.image.resize, with a traced window).
  """
  step = length / out_size
  centers_O = start + (jnp.arange(out_size) + 0.5) * step - 0.5
  width = jnp.maximum(step, 1.0)
  pixels_I = jnp.arange(in_size)
  # Centers lie in [-0.5, in_size - 0.5], so every row has some weight to normalise.
  w_OxI = jnp.maximum(0.0, 1.0 - jnp.abs(centers_O[:, None] - pixels_I[None]) / width)
  return w_OxI / jnp.sum(w_OxI, 1, keepdims=True)


def crop_and_resize(image_HxWxC, top, left, height, width, out_size: int):
  """The window [top, top + height) x [left, left + width) resampled to out_size^2."""
  H, W, _ = image_HxWxC.shape
  rows_OxH = _resample_matrix(top, height, H, out_size)
  cols_OxW = _resample_matrix(left, width, W, out_size)
  return jnp.einsum("oh,hwc,pw->opc", rows_OxH, image_HxWxC, cols_OxW)


def _crop_window(u4, H: int, W: int, scale, ratio):
  """(top, left, height, width) of an Inception-style crop from four uniforms in [0, 1).

  Windows larger than the image are clipped to it instead of redrawn (one draw, no
  rejection loop), which slightly favours the largest crops.
  """
  area = H * W * (scale[0] + u4[0] * (scale[1] - scale[0]))
  log_ratio = jnp.log(ratio[0]) + u4[1] * (jnp.log(ratio[1]) - jnp.log(ratio[0]))
  width = jnp.clip(jnp.sqrt(area * jnp.exp(log_ratio)), 1.0, W)
  height = jnp.clip(jnp.sqrt(area / jnp.exp(log_ratio)), 1.0, H)
  return u4[2] * (H - height), u4[3] * (W - width), height, width


def random_resized_crop(u4, image_HxWxC, out_size: int, scale=(0.08, 1.0),
                        ratio=(3 / 4, 4 / 3)):
  """Random area fraction and log-uniform aspect ratio, resampled to out_size^2."""
  H, W, _ = image_HxWxC.shape
  return crop_and_resize(image_HxWxC, *_crop_window(u4, H, W, scale, ratio), out_size)


def random_flip(u, image_HxWxC, prob: float = 0.5):
  """Mirrored left-right when the uniform `u` falls below `prob`."""
  return jnp.where(u < prob, image_HxWxC[:, ::-1], image_HxWxC)


# --- colour ---------------------------------------------------------------------------------

def to_grayscale(image_HxWxC):
  """Luma, repeated over the channels (so the shape stays the same)."""
  luma_HxWx1 = image_HxWxC @ jnp.asarray(LUMA_WEIGHTS)[:, None]
  return jnp.broadcast_to(luma_HxWx1, image_HxWxC.shape)


def adjust_brightness(image, factor):
  return jnp.clip(image * factor, 0.0, 1.0)


def adjust_contrast(image, factor):
  mean = jnp.mean(to_grayscale(image))
  return jnp.clip(mean + (image - mean) * factor, 0.0, 1.0)


def adjust_saturation(image, factor):
  gray = to_grayscale(image)
  return jnp.clip(gray + (image - gray) * factor, 0.0, 1.0)


def rgb_to_hsv(rgb_HxWx3):
  r, g, b = rgb_HxWx3[..., 0], rgb_HxWx3[..., 1], rgb_HxWx3[..., 2]
  value = jnp.max(rgb_HxWx3, -1)
  chroma = value - jnp.min(rgb_HxWx3, -1)
  safe = jnp.where(chroma > 0, chroma, 1.0)
  hue = jnp.where(value == r, (g - b) / safe,
                  jnp.where(value == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
  hue = jnp.where(chroma > 0, (hue / 6.0) % 1.0, 0.0)
  saturation = jnp.where(value > 0, chroma / jnp.where(value > 0, value, 1.0), 0.0)
  return jnp.stack([hue, saturation, value], -1)


def hsv_to_rgb(hsv_HxWx3):
  h, s, v = hsv_HxWx3[..., 0], hsv_HxWx3[..., 1], hsv_HxWx3[..., 2]
  # Each channel is v - v*s*clip(...) of the hue distance to its sector (n = 5, 3, 1).
  channels = []
  for n in (5.0, 3.0, 1.0):
    k = (n + h * 6.0) % 6.0
    channels.append(v - v * s * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0))
  return jnp.stack(channels, -1)


def adjust_hue(image, delta):
  """Rotates hue by `delta` turns (a fraction of the colour wheel)."""
  if image.shape[-1] != 3:
    return image  # hue is undefined for gray images
  hsv = rgb_to_hsv(image)
  hsv = hsv.at[..., 0].set((hsv[..., 0] + delta) % 1.0)
  return jnp.clip(hsv_to_rgb(hsv), 0.0, 1.0)


def color_jitter(u8, image, brightness: float, contrast: float, saturation: float,
                 hue: float):
  """Brightness, contrast, saturation and hue changes, applied in a random order: of the
  eight uniforms `u8`, four set the order and four the strengths."""
  def factor(u, amount):
    low = max(0.0, 1.0 - amount)
    return low + u * (1.0 + amount - low)

  ops = [
      lambda x: adjust_brightness(x, factor(u8[4], brightness)),
      lambda x: adjust_contrast(x, factor(u8[5], contrast)),
      lambda x: adjust_saturation(x, factor(u8[6], saturation)),
      lambda x: adjust_hue(x, (2.0 * u8[7] - 1.0) * hue),
  ]
  order = jnp.argsort(u8[:4])  # a uniformly random permutation
  # A loop (not unrolled) keeps one copy of the four ops in the compiled program.
  return jax.lax.fori_loop(0, len(ops), lambda i, x: jax.lax.switch(order[i], ops, x), image)


# --- filters --------------------------------------------------------------------------------

def gaussian_blur(image_HxWxC, sigma, radius: int):
  """Separable Gaussian blur with a traced sigma and a static radius, reflect padding."""
  offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  taps = jnp.exp(-0.5 * (offsets / sigma) ** 2)
  taps = taps / jnp.sum(taps)
  H, W, _ = image_HxWxC.shape
  padded = jnp.pad(image_HxWxC, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
  rows = sum(taps[i] * padded[i:i + H] for i in range(2 * radius + 1))
  return sum(taps[i] * rows[:, i:i + W] for i in range(2 * radius + 1))


def blur_radius(image_size: int) -> int:
  """About a tenth of the image as kernel size, as in SimCLR/BYOL (23 taps at 224)."""
  return max(1, image_size // 20)


def solarize(image, threshold: float = 0.5):
  return jnp.where(image < threshold, image, 1.0 - image)


# --- a view ---------------------------------------------------------------------------------

def augment_view(key, image_HxWxC, spec: ViewSpec, out_size: int):
  """One augmented view of one float image in [0, 1].

  All random numbers of the view come from one draw: each extra PRNG call costs seconds of
  compilation on CPU, and nothing here needs more than uniforms.
  """
  u = jax.random.uniform(key, (18,))
  x = random_resized_crop(u[0:4], image_HxWxC, out_size,
                          (spec.crop_min_scale, spec.crop_max_scale), spec.crop_ratio)
  x = random_flip(u[4], x, spec.flip_prob)
  if spec.jitter_prob > 0:
    jittered = color_jitter(u[5:13], x, spec.brightness, spec.contrast, spec.saturation,
                            spec.hue)
    x = jnp.where(u[13] < spec.jitter_prob, jittered, x)
  if spec.grayscale_prob > 0:
    x = jnp.where(u[14] < spec.grayscale_prob, to_grayscale(x), x)
  if spec.blur_prob > 0:
    sigma = spec.blur_sigma[0] + u[15] * (spec.blur_sigma[1] - spec.blur_sigma[0])
    blurred = gaussian_blur(x, sigma, blur_radius(out_size))
    x = jnp.where(u[16] < spec.blur_prob, blurred, x)
  if spec.solarize_prob > 0:
    x = jnp.where(u[17] < spec.solarize_prob, solarize(x), x)
  return jnp.clip(x, 0.0, 1.0)


def to_float(images_uint8):
  return images_uint8.astype(jnp.float32) / 255.0


def example_keys(key, num_views: int, local_batch: int, axis_name=None):
  """Keys [V, B] for this device's examples: its slice of split(key, (V, global batch)).

  Under jit the batch is global and this is the whole split; under pmap each device takes
  its own columns, so the views, and hence the numbers, match jit exactly.
  """
  if axis_name is None:
    return jax.random.split(key, (num_views, local_batch))
  n = jax.lax.axis_size(axis_name)
  keys_VxG = jax.random.split(key, (num_views, local_batch * n))
  start = jax.lax.axis_index(axis_name) * local_batch
  return jax.lax.dynamic_slice_in_dim(keys_VxG, start, local_batch, axis=1)


def augment_batch(key, images_BxHxWxC, specs, out_size: int, axis_name=None):
  """One tuple entry per spec: float views [B, out, out, C] in [0, 1], a key per example.

  Example b of view v uses key split(key, (V, B))[v, b] of the global batch: the views
  depend on the global batch and the key only, not on jit/pmap or the device count.
  """
  images = to_float(images_BxHxWxC) if images_BxHxWxC.dtype == jnp.uint8 else images_BxHxWxC
  keys_VxB = example_keys(key, len(specs), images.shape[0], axis_name)
  return tuple(
      jax.vmap(lambda k, x, s=spec: augment_view(k, x, s, out_size))(keys_VxB[v], images)
      for v, spec in enumerate(specs))
