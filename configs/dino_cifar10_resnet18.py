"""DINO on CIFAR-10 with ResNet-18 (Caron et al. 2021), as solo-learn's CIFAR recipe.

The DINO paper pretrains on ImageNet only, so this takes solo-learn's published CIFAR
hyperparameters (da Costa et al. 2022, scripts/pretrain/cifar/dino.yaml and its method
defaults): batch 256, LARS lr 0.3 (not scaled with the batch), weight decay 1e-6, momentum
0.9, 10 warmup epochs then cosine to 0, 1000 epochs, no gradient clipping; head: 3-layer
GELU MLP 2048 wide without batch norm, a 256-d bottleneck, 4096 weight-normalised
prototypes; student temperature 0.1, teacher temperature 0.07 throughout, centre momentum
0.9; teacher EMA 0.9995 raised to 1 by a cosine; two global views only (BYOL's asymmetric
views, crop area (0.08, 1), no blur), no local crops. Expect about 89.5% top-1 (solo-learn
reports 89.52%, with its online linear classifier).

Not reproduced:
  - freezing the prototype layer during the first epoch (solo-learn and DINO do);
  - solo-learn's LARS uses trust coefficient 0.02 and caps each layer's adaptive lr at the
    scheduled lr (clip_lr); ssl_jax's LARS (optax) has 0.001 and no cap, so weight-matrix
    steps can be up to 20x smaller at the same lr. The lr may need retuning.
The local-crop fields are unused while local_crops is 0; they hold a DINO-like choice for
32 px images should one add local crops (local_crop_min_scale must stay below
crop_min_scale even then).

Needs CIFAR-10 prepared as array_record (no network at run time):
  tfds build cifar10 --file_format=array_record --data_dir=DIR   # where there is network
  python -m ssl_jax.main --config configs/dino_cifar10_resnet18.py --workdir W \
      --config.data.data_dir=DIR
  python -m ssl_jax.evaluate --workdir W --protocol linear --data_dir=DIR
"""
from configs import common, dino_imagenet_vits16, simclr_cifar10_resnet18


def get_config():
  c, steps_per_epoch = simclr_cifar10_resnet18.base("dino", batch_size=256, epochs=1000)
  # DINO's global views are BYOL's. solo-learn's CIFAR recipe has no multi-crop: the local
  # crop fields are unused.
  c.augment = dino_imagenet_vits16.multi_crop(common.augment("byol", blur=False),
                                              local_crops=0, local_size=16,
                                              local_crop_min_scale=0.05)
  c.head = common.head(2048, 256, num_layers=3)  # 256: the bottleneck before the prototypes
  # No warmup of the teacher temperature
  c.dino = dino_imagenet_vits16.objective(4096, base_momentum=0.9995,
                                          warmup_teacher_temp_steps=0)

  c.optim = common.lars(0.3, warmup_steps=10 * steps_per_epoch, weight_decay=1e-6)
  return c
