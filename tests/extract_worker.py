"""Feature extraction over the devices of several processes (test_eval_scale.py).

python tests/extract_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR: every process extracts
the same inputs in memory and through a file-backed array; each saves what it got.
"""
import os
import sys

import numpy as np

BATCH = 16  # with 8 devices: 2 rows per device, and the last of 3 batches padded
NUM_INPUTS = 37


def encoder_and_inputs():
  """A small attention encoder (patches, LayerNorm, self-attention, mean pool) at a fixed
  init, and NUM_INPUTS fixed 8x8 images."""
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  from ssl_jax.evaluate.transfer import Encoder

  class Small(nn.Module):
    @nn.compact
    def __call__(self, images_BxHxWx3):
      x_BxTxC = images_BxHxWx3.astype(jnp.float32).reshape(images_BxHxWx3.shape[0], 16, 12)
      x_BxTxD = nn.LayerNorm()(nn.Dense(16)(x_BxTxC / 127.5 - 1.0))
      return (x_BxTxD + nn.MultiHeadDotProductAttention(num_heads=2)(x_BxTxD)).mean(1)

  module = Small()
  params = jax.jit(module.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]

  def apply(params, state, images_BxHxWx3, train):
    del train
    return module.apply({"params": params}, images_BxHxWx3), state

  images = np.random.default_rng(0).integers(0, 256, (NUM_INPUTS, 8, 8, 3)).astype(np.uint8)
  return Encoder(apply, params), images


def main(process_id: int, num_processes: int, port: str, out_dir: str):
  import jax
  jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=num_processes,
                             process_id=process_id)
  from ssl_jax.evaluate.transfer import extract
  encoder, images = encoder_and_inputs()
  in_memory = extract(encoder, images, BATCH)
  on_disk = extract(encoder, images, BATCH, memory_mb=0)
  np.savez(os.path.join(out_dir, f"process{process_id}.npz"), in_memory=in_memory,
           on_disk=np.asarray(on_disk), devices=jax.device_count(),
           disk_backed=isinstance(on_disk, np.memmap))


if __name__ == "__main__":
  main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
