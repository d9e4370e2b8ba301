"""MAE on CIFAR-10 with a ViT-tiny of 4x4 patches (He et al. 2022), after solo-learn's recipe.

MAE masks patches, so a ViT replaces the ResNet-18 of the other CIFAR recipes: ViT-tiny
(12 blocks, width 192, 3 heads) on 32x32 images cut into 64 patches of 4x4, a class token.
The MAE paper pretrains on ImageNet only, so the rest is solo-learn's published CIFAR recipe
(da Costa et al. 2022, scripts/pretrain/cifar/mae.yaml), which uses a ViT-small instead
(--config.model.size=small gives that): mask 75%, per-patch normalised pixel targets, decoder
512 wide, 8 deep, 16 heads; batch 256, AdamW lr 2e-4 (its value at batch 256; scaled here by
batch/256), betas (0.9, 0.95), weight decay 0.05, no gradient clipping, 10 warmup epochs then
cosine to 0, 1000 epochs; one view: crop area (0.08, 1) and a flip (the paper's ImageNet
crop starts at 0.2). solo-learn reports no CIFAR-10 accuracy for MAE; evaluate by
fine-tuning, MAE's protocol (the linear probe is a weak measure of it).

Not reproduced: MAE's fixed 2-D sin-cos position embeddings (learned here).

Needs CIFAR-10 prepared as array_record (no network at run time):
  tfds build cifar10 --file_format=array_record --data_dir=DIR   # where there is network
  python -m ssl_jax.main --config configs/mae_cifar10_vittiny.py --workdir W \
      --config.data.data_dir=DIR
  python -m ssl_jax.evaluate --workdir W --protocol finetune --data_dir=DIR   (or linear)
"""
import ml_collections

from configs import common, simclr_cifar10_resnet18

TRAIN_IMAGES = simclr_cifar10_resnet18.TRAIN_IMAGES
BATCH_SIZE = 256
EPOCHS = 1000


def get_config():
  steps_per_epoch = TRAIN_IMAGES // BATCH_SIZE  # 195
  base = simclr_cifar10_resnet18.get_config()  # its data
  c = common.loop("mae", total_steps=EPOCHS * steps_per_epoch, batch_size=BATCH_SIZE,
                  log_every=100, eval_every=10 * steps_per_epoch,
                  eval_steps=40,  # 10k test images
                  checkpoint_every=5 * steps_per_epoch, keep_checkpoints=3)
  c.data = base.data

  c.augment = ml_collections.ConfigDict()
  c.augment.preset = "mae"  # one view: crop and flip, no colour changes
  c.augment.strength = 1.0  # colour jitter: unused by the mae preset
  c.augment.crop_min_scale = 0.08
  c.augment.blur = False  # the mae preset has none
  c.augment.flip = True

  c.model = ml_collections.ConfigDict()
  common.vit(c.model, "tiny", patch_size=4, pool="cls")
  c.model.mlp_ratio = 4
  c.model.dtype = "bfloat16"  # compute dtype; params and the loss stay float32
  common.add_backends(c.model, attention=False)

  c.mae = ml_collections.ConfigDict()
  c.mae.mask_ratio = 0.75
  c.mae.norm_pix = True  # per-patch normalised pixels as the target
  c.mae.decoder_width = 512
  c.mae.decoder_depth = 8
  c.mae.decoder_heads = 16

  c.optim = common.adamw(2e-4 * c.batch_size / 256, warmup_steps=10 * steps_per_epoch,
                         min_lr_ratio=0.0, b1=0.9, b2=0.95, weight_decay=0.05, grad_clip=0.0)
  c.mesh = common.mesh()
  return c
