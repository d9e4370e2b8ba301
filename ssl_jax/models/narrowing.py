"""A `dot_general` for nn.Dense layers that narrow (in > out), for XLA:CPU's sake.

A Dense layer's weight gradient is x^T g, a contraction over the token axis. XLA:CPU runs
it at about half speed when its output has more rows than columns, as in a transformer
MLP's output projection (4D -> D): 220 against 370 GFLOP/s at 2048 x 1024 -> 256 on the
developers' CPU (benchmarks/NOTES.md). Computing (g^T x)^T instead gives the same numbers
up to summation order: -4% GPT step time at the bench's first shape. Other backends keep
XLA's default product.
"""
import jax


@jax.custom_vjp
def _matmul(x_NxK, w_KxF):
  return x_NxK @ w_KxF


def _matmul_fwd(x_NxK, w_KxF):
  return x_NxK @ w_KxF, (x_NxK, w_KxF)


def _matmul_bwd(res, g_NxF):
  x_NxK, w_KxF = res
  # The barrier stops XLA from folding the small transpose back into the product.
  dw_FxK = jax.lax.optimization_barrier(g_NxF.T @ x_NxK)
  return g_NxF @ w_KxF.T, dw_FxK.T


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


def _dense_dot(x, w, dimension_numbers, precision=None, preferred_element_type=None):
  """nn.Dense's product (last axis of x with the first of w) through _matmul."""
  del dimension_numbers, precision, preferred_element_type  # nn.Dense's defaults only
  y_NxF = _matmul(x.reshape(-1, x.shape[-1]), w)
  return y_NxF.reshape(*x.shape[:-1], w.shape[-1])


def dot_general():
  """For `nn.Dense(..., dot_general=narrowing.dot_general())`: None (XLA's) off CPU."""
  return _dense_dot if jax.default_backend() == "cpu" else None
