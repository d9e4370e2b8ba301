"""ResNet v1.5 (He et al. 2016; stride on the 3x3 conv) as a feature extractor.

`stem="imagenet"`: 7x7/2 conv + 3x3/2 max pool; `stem="cifar"`: one 3x3/1 conv and no pool,
the usual choice for 32x32 images (and smaller). The output is the globally pooled
feature vector; heads live elsewhere.

Batch norm: under jax.jit over a mesh, the batch axis is global and so are the statistics.
Under pmap/shard_map, pass `bn_axis_name` to average them over that named axis.
"""
import functools
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp


def _last_scale_init(zero: bool):
  return nn.initializers.zeros if zero else nn.initializers.ones


class BasicBlock(nn.Module):
  filters: int
  strides: int
  norm: functools.partial
  dtype: jnp.dtype = jnp.float32
  zero_init: bool = False  # last BN scale 0: the block starts as the identity

  @nn.compact
  def __call__(self, x_BxHxWxC):
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
    y = conv(self.filters, (3, 3), self.strides, padding=1)(x_BxHxWxC)
    y = nn.relu(self.norm()(y))
    y = conv(self.filters, (3, 3), padding=1)(y)
    y = self.norm(scale_init=_last_scale_init(self.zero_init))(y)
    shortcut = x_BxHxWxC
    if shortcut.shape != y.shape:
      shortcut = self.norm()(conv(self.filters, (1, 1), self.strides, name="proj")(shortcut))
    return nn.relu(y + shortcut)


class Bottleneck(nn.Module):
  filters: int
  strides: int
  norm: functools.partial
  dtype: jnp.dtype = jnp.float32
  zero_init: bool = False

  @nn.compact
  def __call__(self, x_BxHxWxC):
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
    y = nn.relu(self.norm()(conv(self.filters, (1, 1))(x_BxHxWxC)))
    y = nn.relu(self.norm()(conv(self.filters, (3, 3), self.strides, padding=1)(y)))
    y = self.norm(scale_init=_last_scale_init(self.zero_init))(conv(4 * self.filters, (1, 1))(y))
    shortcut = x_BxHxWxC
    if shortcut.shape != y.shape:
      shortcut = self.norm()(conv(4 * self.filters, (1, 1), self.strides, name="proj")(shortcut))
    return nn.relu(y + shortcut)


STAGES = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ResNet(nn.Module):
  depth: int = 50
  stem: str = "imagenet"  # or "cifar"
  width: int = 64  # channels of the first stage; 64 is the standard network
  bn_momentum: float = 0.9
  # Zero-init residual (Goyal et al. 2017) helps large-batch supervised training, but a
  # freshly initialised network is then a few strided 1x1 projections: a useless "random
  # init" baseline. Off by default.
  zero_init_residual: bool = False
  bn_axis_name: Optional[str] = None
  dtype: jnp.dtype = jnp.float32

  @property
  def features_dim(self) -> int:
    block, _ = STAGES[self.depth]
    return self.width * 8 * (4 if block is Bottleneck else 1)

  @nn.compact
  def __call__(self, images_BxHxWxC, train: bool = False):
    block, counts = STAGES[self.depth]
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=self.bn_momentum, epsilon=1e-5,
                             axis_name=self.bn_axis_name, dtype=self.dtype)
    x = images_BxHxWxC.astype(self.dtype)
    if self.stem == "imagenet":
      x = nn.Conv(self.width, (7, 7), 2, padding=3, use_bias=False, dtype=self.dtype)(x)
      x = nn.relu(norm()(x))
      x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    else:
      x = nn.Conv(self.width, (3, 3), 1, padding=1, use_bias=False, dtype=self.dtype)(x)
      x = nn.relu(norm()(x))
    for stage, count in enumerate(counts):
      for i in range(count):
        strides = 2 if stage > 0 and i == 0 else 1
        x = block(self.width * 2 ** stage, strides, norm, self.dtype, self.zero_init_residual,
                  name=f"stage{stage + 1}_block{i + 1}")(x)
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)
