"""MAE, masked autoencoding of images (He et al. 2022).

A random 75% of the patches are hidden; the encoder sees only the visible ones, a light
decoder fills in the rest, and the loss is the mean squared error on the hidden patches'
pixels, each patch normalised by its own mean and variance (the paper's default target).
"""
import jax
import jax.numpy as jnp


def patchify(images_BxHxWxC, patch_size: int):
  """[B, H, W, C] -> [B, N, p*p*C], patches in row-major order (the ViT's token order)."""
  B, H, W, C = images_BxHxWxC.shape
  p = patch_size
  x = images_BxHxWxC.reshape(B, H // p, p, W // p, p, C).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(B, (H // p) * (W // p), p * p * C)


def keep_count(num_patches: int, mask_ratio: float) -> int:
  """How many patches each example keeps visible (at least one)."""
  return max(1, int(round(num_patches * (1.0 - mask_ratio))))


def random_keep(keys_B, num_patches: int, mask_ratio: float):
  """(keep_BxK, mask_BxN): the indices of the K visible patches of each example (a random
  subset drawn from its own key) and a mask that is 1 on the hidden patches."""
  K = keep_count(num_patches, mask_ratio)
  noise_BxN = jax.vmap(lambda k: jax.random.uniform(k, (num_patches,)))(keys_B)
  keep_BxK = jnp.argsort(noise_BxN, axis=-1)[:, :K]
  B = keep_BxK.shape[0]
  mask_BxN = jnp.ones((B, num_patches)).at[jnp.arange(B)[:, None], keep_BxK].set(0.0)
  return keep_BxK, mask_BxN


def pixel_targets(patches_BxNxP, norm_pix: bool = True, eps: float = 1e-6):
  """Each patch's pixels, standardised per patch when `norm_pix`."""
  if not norm_pix:
    return patches_BxNxP
  mean = jnp.mean(patches_BxNxP, -1, keepdims=True)
  var = jnp.var(patches_BxNxP, -1, keepdims=True, ddof=1)  # unbiased, as MAE's code
  return (patches_BxNxP - mean) / jnp.sqrt(var + eps)


def mae_loss(pred_BxNxP, target_BxNxP, mask_BxN):
  """Mean squared error per patch, averaged over the hidden patches only.

  Every example hides the same number of patches, so the mean over a device's rows,
  averaged over devices, is the global batch's mean.
  """
  per_patch_BxN = jnp.mean((pred_BxNxP.astype(jnp.float32) - target_BxNxP) ** 2, -1)
  return jnp.sum(per_patch_BxN * mask_BxN) / jnp.sum(mask_BxN)
