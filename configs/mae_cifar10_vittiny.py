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
from configs import common, mae_imagenet_vitb16, simclr_cifar10_resnet18


def get_config():
  c, steps_per_epoch = simclr_cifar10_resnet18.base(
      "mae", batch_size=256, epochs=1000, model=common.vit_model("tiny", patch_size=4))
  # One view: crop and flip, no colour changes (strength is unused by the mae preset)
  c.augment = common.augment("mae", blur=False)
  c.mae = mae_imagenet_vitb16.objective()
  c.optim = mae_imagenet_vitb16.optimizer(2e-4 * c.batch_size / 256,
                                          warmup_steps=10 * steps_per_epoch)
  return c
