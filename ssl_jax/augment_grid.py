"""Look at what the model sees: a PNG grid of augmented views.

python -m ssl_jax.augment_grid --config configs/simclr_digits.py --out views.png \
    [--num_images 8] [--num_views 6] [--seed 0] [--config.augment.strength=1.0 ...]

One row per image: the (resized) original, then `num_views` views, alternating over the
preset's view specs (BYOL's two views differ). Uses the config's data and augment fields.
"""
import sys

import jax
import numpy as np

from ssl_jax import bootstrap
from ssl_jax.data import augment
from ssl_jax.errors import EXIT_CONFIG

GAP = 2  # pixels between tiles


def grid(images_NxSxSx3, specs, out_size: int, num_views: int, key, zoom: int = 1):
  """uint8 [rows, cols, 3]: originals in the first column, views after."""
  N, S = images_NxSxSx3.shape[:2]
  columns = [augment.to_float(images_NxSxSx3)]
  if S != out_size:  # show the original at the views' size
    columns[0] = jax.vmap(lambda x: augment.crop_and_resize(x, 0.0, 0.0, S, S, out_size))(
        columns[0])
  draw = jax.jit(lambda k, x, spec: augment.augment_batch(k, x, (spec,), out_size)[0],
                 static_argnums=2)
  for v in range(num_views):
    columns.append(draw(jax.random.fold_in(key, v), images_NxSxSx3, specs[v % len(specs)]))
  tiles = np.stack([np.asarray(c) for c in columns], 1)  # N x (1 + V) x S x S x 3
  tiles = np.repeat(np.repeat(tiles, zoom, 2), zoom, 3)
  T = out_size * zoom
  out = np.full((N * (T + GAP) - GAP, (1 + num_views) * (T + GAP) - GAP, 3), 1.0, np.float32)
  for r in range(N):
    for c in range(1 + num_views):
      out[r * (T + GAP):r * (T + GAP) + T, c * (T + GAP):c * (T + GAP) + T] = tiles[r, c]
  return np.round(np.clip(out, 0.0, 1.0) * 255).astype(np.uint8)


def write(config, path: str, num_images: int = 8, num_views: int = 6, seed: int = 0):
  """Loads the first `num_images` training images of config.data and writes the grid."""
  from PIL import Image
  from ssl_jax.data import images
  from ssl_jax.tasks.vision import view_specs
  size = config.data.image_size
  data = images.load(config.data)
  originals, _ = images.load_arrays(data.train, size, limit=num_images)
  zoom = max(1, 64 // size)  # small images are enlarged so they can be seen
  pixels = grid(originals, view_specs(config), size, num_views, jax.random.key(seed), zoom)
  Image.fromarray(pixels).save(path)
  return pixels.shape


USAGE = ("Usage: python -m ssl_jax.augment_grid --config configs/NAME.py --out FILE.png "
         "[--num_images N] [--num_views V] [--seed S] [--config.FIELD=VALUE ...]")


def usage_error(config, out: str, num_images: int, num_views: int) -> str | None:
  """What is wrong with the command line, before any data is read."""
  import os
  from ssl_jax import config_check
  if num_images < 1 or num_views < 1:
    return f"--num_images and --num_views must be at least 1; got {num_images}, {num_views}."
  if "augment" not in config or "image_size" not in config.get("data", {}):
    return (f"{config.get('objective', 'this')!r} config has no augment or data.image_size "
            "fields; augment_grid shows image augmentations: use an image config such as "
            "configs/simclr_digits.py.")
  folder = os.path.dirname(os.path.abspath(out))
  if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
    return f"--out {out}: {folder} is not a writable directory."
  if os.path.splitext(out)[1].lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".webp"):
    return f"--out {out} must end in .png (or .jpg, .jpeg, .bmp, .webp)."
  # Fields out of range; not the objective's checks: one-view presets are worth a look too.
  config_check.check(config, objective_checks=False)
  return None


def main(argv):
  from absl import flags
  f = flags.FLAGS
  if len(argv) > 1 or f.config is None or not f.out:
    print(f"error: --config and --out are required.\n{USAGE}", file=sys.stderr)
    return EXIT_CONFIG
  try:
    problem = usage_error(f.config, f.out, f.num_images, f.num_views)
    if problem:
      print(f"error: {problem}\n{USAGE}", file=sys.stderr)
      return EXIT_CONFIG
    shape = write(f.config, f.out, f.num_images, f.num_views, f.seed)
  except Exception as e:
    return bootstrap.exit_code(e)
  print(f"Wrote {f.out} ({shape[1]}x{shape[0]} pixels): originals, then "
        f"{f.num_views} views per image.")
  return 0


if __name__ == "__main__":
  from absl import flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file("config", None, "Python config file (get_config()).")
  flags.DEFINE_string("out", "views.png", "Where to write the PNG.")
  flags.DEFINE_integer("num_images", 8, "Rows: how many training images.")
  flags.DEFINE_integer("num_views", 6, "Augmented views per image.")
  flags.DEFINE_integer("seed", 0, "PRNG seed of the views.")
  bootstrap.start("ssl_jax.augment_grid", main, USAGE)
