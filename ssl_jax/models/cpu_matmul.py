"""A `dot_general` for nn.Dense and nn.DenseGeneral whose backward pass XLA:CPU runs fast.

Under plain autodiff, XLA:CPU computes some dense-layer gradients slowly: it transposes the
incoming gradient in a strided copy fused with the elementwise work before it (GELU's
derivative, for one), and it runs a weight gradient x^T g (a contraction over tokens) at
about half speed when the result has more rows than columns (K > F, as in an MLP's 4D -> D
projection). This product writes its backward pass out: dx = g w^T, and dw = x^T g, or
(g^T x)^T when K > F. Same values up to summation order; the GPT step was 10-20% faster
on both AMD EPYC kinds measured (benchmarks/RESULTS.md). Where it is used is layers.py's choice.
"""
import math

import jax


@jax.custom_vjp
def _matmul(x_NxK, w_KxF):
  return x_NxK @ w_KxF


def _matmul_fwd(x_NxK, w_KxF):
  return x_NxK @ w_KxF, (x_NxK, w_KxF)


def _matmul_bwd(res, g_NxF):
  x_NxK, w_KxF = res
  K, F = w_KxF.shape
  if K > F:  # the barrier keeps XLA from folding the small transpose back into the product
    dw_KxF = jax.lax.optimization_barrier(g_NxF.T @ x_NxK).T
  else:
    dw_KxF = x_NxK.T @ g_NxF
  return g_NxF @ w_KxF.T, dw_KxF


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


def dot_general(x, w, dimension_numbers, precision=None, preferred_element_type=None):
  """For nn.Dense(dot_general=...): x's trailing axes contracted with w's leading axes, as
  one 2-D _matmul; any other contraction is XLA's."""
  (x_axes, w_axes), (x_batch, _) = dimension_numbers
  n = len(x_axes)
  if (x_batch or tuple(x_axes) != tuple(range(x.ndim - n, x.ndim))
      or tuple(w_axes) != tuple(range(n)) or precision is not None
      or preferred_element_type is not None):
    return jax.lax.dot_general(x, w, dimension_numbers, precision, preferred_element_type)
  K = math.prod(x.shape[x.ndim - n:])
  y_NxF = _matmul(x.reshape(-1, K), w.reshape(K, -1))
  return y_NxF.reshape(*x.shape[:x.ndim - n], *w.shape[n:])

