"""Batch-level terms over the global batch, whatever the parallel wrapper.

Under jax.jit over a mesh the arrays are already global. Inside pmap each device holds its
rows only: `gather` all-gathers them (device d's rows at [d*B, (d+1)*B)), so a statistic of
the batch (a mean, a correlation, a covariance) is the global one on every device. Each
device then computes the same global loss; its gradient flows back through the gather to
each device's own rows, and the average of the devices' gradients (step.py) is the global
loss's gradient.
"""
import jax


def gather(x_BxD, axis_name=None):
  """The global batch of x: x itself without a device axis, else the tiled all-gather."""
  if axis_name is None:
    return x_BxD
  return jax.lax.all_gather(x_BxD, axis_name, tiled=True)


def mean(x, axis_name=None):
  """The mean over the global batch of a per-device mean (equal rows per device)."""
  return x if axis_name is None else jax.lax.pmean(x, axis_name)
