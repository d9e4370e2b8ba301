"""VICReg (Bardes, Ponce and LeCun 2022): variance, invariance and covariance terms.

Invariance pulls the two views' embeddings together (mean squared error); variance keeps
each feature's standard deviation over the batch above 1 (a hinge), which prevents
collapse; covariance pushes the off-diagonal covariances to 0, which decorrelates the
features. Variance and covariance are statistics of the global batch.
"""
import jax
import jax.numpy as jnp

from ssl_jax.objectives import global_batch


def variance_term(z_NxD, eps: float = 1e-4):
  std_D = jnp.sqrt(jnp.var(z_NxD, 0, ddof=1) + eps)  # unbiased, as the paper's code
  return jnp.mean(jax.nn.relu(1.0 - std_D))


def covariance_term(z_NxD):
  N, D = z_NxD.shape
  centred = z_NxD - jnp.mean(z_NxD, 0)
  cov_DxD = centred.T @ centred / (N - 1)
  return (jnp.sum(cov_DxD ** 2) - jnp.sum(jnp.diagonal(cov_DxD) ** 2)) / D


def vicreg_terms(z1_BxD, z2_BxD, axis_name=None):
  """{"invariance", "variance", "covariance"} on the global batch."""
  a = global_batch.gather(z1_BxD.astype(jnp.float32), axis_name)
  b = global_batch.gather(z2_BxD.astype(jnp.float32), axis_name)
  return {"invariance": jnp.mean((a - b) ** 2),
          "variance": (variance_term(a) + variance_term(b)) / 2,
          "covariance": covariance_term(a) + covariance_term(b)}


def vicreg_loss(z1_BxD, z2_BxD, invariance_weight: float = 25.0, variance_weight: float = 25.0,
                covariance_weight: float = 1.0, axis_name=None):
  """(loss, terms): the weighted sum of the three terms, and the terms themselves."""
  t = vicreg_terms(z1_BxD, z2_BxD, axis_name)
  loss = (invariance_weight * t["invariance"] + variance_weight * t["variance"]
          + covariance_weight * t["covariance"])
  return loss, t
