"""The model pieces of the vision methods: ViT size presets, position grids resized for
small crops, encoding kept patches only, MAE's decoder and DINO's prototype head."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ssl_jax.errors import ConfigError
from ssl_jax.models.encoders import vit_dims
from ssl_jax.models.heads import DINOHead
from ssl_jax.models.mae import MAEDecoder
from ssl_jax.models.vit import SIZES, ViT
from ssl_jax.objectives import mae
from test_vision_losses import _normal, _params


def _vit_cfg(size, depth=0, width=0, num_heads=0):
  return ml_collections.ConfigDict(
      {"name": "vit", "size": size, "depth": depth, "width": width, "num_heads": num_heads,
       "patch_size": 16, "pool": "cls"})


def test_vit_size_presets_and_overrides():
  want = {"tiny": (12, 192, 3), "small": (12, 384, 6), "base": (12, 768, 12),
          "large": (24, 1024, 16)}
  assert set(SIZES) == set(want)
  for size, dims in want.items():
    assert vit_dims(_vit_cfg(size)) == dims
  assert vit_dims(_vit_cfg("base", depth=2)) == (2, 768, 12)
  assert vit_dims(_vit_cfg("", depth=1, width=8, num_heads=2)) == (1, 8, 2)
  with pytest.raises(ConfigError, match="model.size"):
    vit_dims(_vit_cfg("huge"))
  with pytest.raises(ConfigError, match="positive"):
    vit_dims(_vit_cfg(""))


def test_vit_position_grid_resizes_to_smaller_inputs():
  vit = ViT(patch_size=2, depth=1, width=8, num_heads=2, pos_grid=4)
  native = ViT(patch_size=2, depth=1, width=8, num_heads=2)  # grid: the input's
  big, small = _normal(0, (2, 8, 8, 3)), _normal(1, (2, 4, 4, 3))
  params = _params(vit, big)
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(
      jnp.shape, jax.eval_shape(vit.init, jax.random.key(0), small))  # one set for both sizes
  pos = params["params"]["pos_embedding"]
  assert pos.shape == (1, 1 + 16, 8)
  # The 4x4 input (a 2x2 patch grid) sees the learned 4x4 grid resized to 2x2: the same as a
  # ViT with a 2x2 grid whose position embeddings are that resize...
  resized = jax.image.resize(pos[0, 1:].reshape(4, 4, 8), (2, 2, 8), "bicubic").reshape(1, 4, 8)
  with_pos = lambda pos: {"params": {**params["params"], "pos_embedding": pos}}

  @jax.jit
  def outputs(params, big, small):
    return (vit.apply(params, big), vit.apply(params, small),
            native.apply(with_pos(jnp.concatenate([pos[:, :1], resized], 1)), small),
            native.apply(with_pos(pos[:, :5]), small), native.apply(params, big))

  out_big, out_small, want_small, cropped_small, native_big = outputs(params, big, small)
  assert out_big.shape == out_small.shape == (2, 8)
  np.testing.assert_allclose(out_small, want_small, rtol=1e-5, atol=1e-6)
  # ...and not the first 4 positions of the grid, unresized.
  assert not np.allclose(out_small, cropped_small, atol=1e-4)
  # At the grid's own size nothing is resized.
  np.testing.assert_allclose(out_big, native_big, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_keep_selects_tokens(pool):
  B, N, K, D = 2, 16, 5, 8
  images = _normal(0, (B, 8, 8, 3))
  keep_BxK = jnp.asarray(np.stack([np.random.default_rng(b).permutation(N)[:K] for b in range(B)]))
  every_BxN = jnp.broadcast_to(jnp.arange(N), (B, N))
  extra = int(pool == "cls")
  # No blocks: every token is its own patch embedding + position, layer-normed, so the kept
  # tokens must be exactly the full output's tokens at those positions.
  flat = ViT(patch_size=2, depth=0, width=D, num_heads=2, pool=pool)
  vit = ViT(patch_size=2, depth=1, width=D, num_heads=2, pool=pool)

  @jax.jit
  def outputs(flat_params, params):
    return (flat.apply(flat_params, images, tokens=True),
            flat.apply(flat_params, images, keep_BxK=keep_BxK, tokens=True),
            vit.apply(params, images, keep_BxK=every_BxN, tokens=True),
            vit.apply(params, images, tokens=True),
            vit.apply(params, images, keep_BxK=every_BxN), vit.apply(params, images),
            vit.apply(params, images, keep_BxK=keep_BxK, tokens=True))

  (all_BxTxD, kept_BxTxD, every_tokens, no_keep_tokens, every_pooled, no_keep_pooled,
   vit_kept) = outputs(_params(flat, images), _params(vit, images))
  assert all_BxTxD.shape == (B, extra + N, D) and kept_BxTxD.shape == (B, extra + K, D)
  assert vit_kept.shape == (B, extra + K, D)
  want = np.take_along_axis(np.asarray(all_BxTxD[:, extra:]), np.asarray(keep_BxK)[..., None], 1)
  np.testing.assert_allclose(kept_BxTxD[:, extra:], want, rtol=1e-5, atol=1e-6)
  # With a block, keeping every patch in order is the same as keeping no list at all.
  np.testing.assert_allclose(every_tokens, no_keep_tokens, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(every_pooled, no_keep_pooled, rtol=1e-5, atol=1e-6)


def test_vit_tokens_follow_patchify_order():
  """MAE's keep indices and pixel targets must name the same patches: the ViT's token n is
  mae.patchify's patch n (row-major), so changing one patch's pixels changes only that token."""
  flat = ViT(patch_size=2, depth=0, width=8, num_heads=2, pool="mean")
  images = _normal(0, (1, 8, 6, 3))  # a 4x3 patch grid: rows and columns not interchangeable
  apply = jax.jit(lambda params, x: flat.apply(params, x, tokens=True))
  params = _params(flat, images)
  before = np.asarray(apply(params, images))
  for i, j in [(0, 2), (3, 0), (2, 1)]:
    delta = np.zeros(images.shape, np.float32)
    delta[0, 2 * i:2 * i + 2, 2 * j:2 * j + 2] = 1.0
    changed_patches = np.flatnonzero(np.abs(np.asarray(mae.patchify(delta, 2))[0]).sum(-1))
    changed_tokens = np.flatnonzero(
        np.abs(np.asarray(apply(params, images + delta)) - before)[0].max(-1) > 1e-6)
    assert list(changed_patches) == list(changed_tokens) == [3 * i + j]


def test_mae_decoder_places_visible_tokens_at_their_positions():
  B, N, K, W, patch_dim = 2, 6, 3, 8, 12
  decoder = MAEDecoder(num_patches=N, patch_dim=patch_dim, width=W, depth=1, num_heads=2)
  tokens_BxTxD = _normal(0, (B, 1 + K, 10))  # class token first
  keep_BxK = jnp.array([[4, 0, 2], [1, 5, 3]])
  # The same visible patches listed in another order (tokens and indices together).
  perm_BxK = jnp.array([[2, 0, 1], [1, 2, 0]])
  keep2 = jnp.take_along_axis(keep_BxK, perm_BxK, 1)
  tokens2 = jnp.concatenate([tokens_BxTxD[:, :1], jnp.take_along_axis(
      tokens_BxTxD[:, 1:], perm_BxK[..., None], 1)], 1)
  apply = jax.jit(decoder.apply)
  params = _params(decoder, tokens_BxTxD, keep_BxK)
  out = apply(params, tokens_BxTxD, keep_BxK)
  assert out.shape == (B, N, patch_dim)
  np.testing.assert_allclose(apply(params, tokens2, keep2), out, rtol=1e-5, atol=1e-6)
  # Moving only the indices (same tokens, other positions) does change it.
  assert not np.allclose(apply(params, tokens_BxTxD, keep2), out, atol=1e-4)
  # Without a class token, the tokens are the visible patches alone.
  params0 = _params(decoder, tokens_BxTxD[:, 1:], keep_BxK)
  assert params0["params"]["pos_embedding"].shape == (1, N, W)
  assert apply(params0, tokens_BxTxD[:, 1:], keep_BxK).shape == (B, N, patch_dim)


def test_dino_head_logits_are_cosines():
  head = DINOHead(hidden_dim=16, bottleneck_dim=6, num_prototypes=6, num_layers=2)
  h_BxD = _normal(0, (5, 4), 50.0)  # large inputs: the bound does not depend on scale
  params = _params(head, h_BxD, scale=1.0)
  protos = params["params"]["prototypes"]
  with_protos = lambda v: {"params": {**params["params"], "prototypes": v}}
  apply = jax.jit(head.apply)
  logits = apply(params, h_BxD)
  assert logits.shape == (5, 6)
  assert float(jnp.abs(logits).max()) <= 1.0 + 1e-6
  # Rescaling the prototype columns changes nothing: only their directions count.
  np.testing.assert_allclose(apply(with_protos(protos * jnp.arange(1.0, 7.0)), h_BxD), logits,
                             rtol=1e-5, atol=1e-6)
  # Orthogonal prototypes (a scaled identity) span the bottleneck: the logits are the
  # unit bottleneck vector's coordinates, so each row has norm 1.
  ortho = apply(with_protos(jnp.diag(jnp.arange(1.0, 7.0))), h_BxD)
  np.testing.assert_allclose(jnp.linalg.norm(ortho, axis=-1), 1.0, rtol=1e-5)
