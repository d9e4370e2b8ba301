"""MAE on scikit-learn's digits: a ViT-tiny (2x2 patches) reconstructs the 75% of each
8x8 digit it does not see (2-core CPU, < 10 minutes). Fine-tuning is MAE's standard
transfer protocol: python -m ssl_jax.evaluate --workdir DIR --protocol finetune.
"""
import ml_collections

from configs import common, simclr_digits


def get_config():
  c = simclr_digits.get_config()
  c.objective = "mae"
  del c["simclr"], c["head"]
  c.augment.preset = "mae"  # one view: crop and (here no) flip, no colour changes
  common.vit(c.model, "tiny", patch_size=2, pool="cls")
  c.mae = ml_collections.ConfigDict()
  c.mae.mask_ratio = 0.75
  c.mae.norm_pix = True  # per-patch normalised pixels as the target
  c.mae.decoder_width = 128  # MAE: 512 wide, 8 deep, 16 heads
  c.mae.decoder_depth = 2
  c.mae.decoder_heads = 4
  c.optim = common.adamw(1e-3, warmup_steps=50, b2=0.95, weight_decay=0.05, grad_clip=0.0)
  return c
