"""Input-pipeline rows: ssl_jax's grain pipelines alone, in the units training consumes.

Text: packed byte sequences read from a token array (as data/text.py caches them) through
pipeline.global_batches / to_iterator. Images: uint8 batches through the same grain
pipeline plus the two SimCLR views that training draws (augment.py), run on the CPU.
"""
import types

import numpy as np

from ssl_jax.data import pipeline


def _row(iterator, units_per_batch, unit, after=None):
  row = types.SimpleNamespace(units_per_step=units_per_batch, unit=unit, flops_per_step=0.0,
                              extra={})

  def run(n):
    for _ in range(n):
      batch = next(iterator)
      if after is not None:
        after(batch)

  row.run = run
  run(4)
  return row


def text_row(seq, batch, corpus_tokens=4_000_000):
  from ssl_jax.data import text
  tokens = np.random.RandomState(0).randint(0, 256, corpus_tokens).astype(np.uint16)
  count, load_rows = text.sequence_loader(tokens, seq)
  ds = pipeline.global_batches(count, batch, load_rows, seed=0)
  return _row(pipeline.to_iterator(ds), batch * seq, "tokens")


def image_row(batch, image_size=32, num_images=8192):
  import jax
  from ssl_jax.data import augment, images
  rng = np.random.RandomState(0)
  source = [{"image": rng.randint(0, 256, (image_size, image_size, 3)).astype(np.uint8),
             "label": i % 10} for i in range(num_images)]
  count, load_rows = images.image_loader(source, image_size)
  ds = pipeline.global_batches(count, batch, load_rows, seed=0)
  specs = augment.views("simclr", strength=0.5, blur=False)
  views = jax.jit(lambda key, x: augment.augment_batch(key, x, specs, image_size))
  key = jax.random.key(0)
  return _row(pipeline.to_iterator(ds), batch, "images",
              after=lambda b: jax.block_until_ready(views(key, b["image"])))
