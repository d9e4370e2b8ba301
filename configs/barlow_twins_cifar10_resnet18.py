"""Barlow Twins on CIFAR-10 with ResNet-18 (Zbontar et al. 2021), as solo-learn's recipe.

The Barlow Twins paper pretrains on ImageNet only, so this takes solo-learn's published
CIFAR hyperparameters (da Costa et al. 2022, scripts/pretrain/cifar/barlow.yaml): batch 256,
LARS lr 0.3 (not scaled with the batch), weight decay 1e-4, momentum 0.9, 10 warmup epochs
then cosine to 0, 1000 epochs; projector 2048-2048-2048 (two hidden layers with batch
norm); off-diagonal weight lambda 0.0051 (the paper's); BYOL's asymmetric views with crop
area (0.08, 1) and no blur on 32 px images. Expect about 92.1% top-1 (solo-learn reports
92.10%, with its online linear classifier).

Not reproduced:
  - solo-learn multiplies the loss by 0.1 (scale_loss); there is no loss-scale field. LARS
    normalises the weight matrices' steps, so this mostly affects biases and norms, whose
    steps are 10x larger here;
  - solo-learn's LARS uses trust coefficient 0.02 and caps each layer's adaptive lr at the
    scheduled lr (clip_lr); ssl_jax's LARS (optax) has 0.001 and no cap, so weight-matrix
    steps can be up to 20x smaller at the same lr. The lr may need retuning.

Needs CIFAR-10 prepared as array_record (no network at run time):
  tfds build cifar10 --file_format=array_record --data_dir=DIR   # where there is network
  python -m ssl_jax.main --config configs/barlow_twins_cifar10_resnet18.py --workdir W \
      --config.data.data_dir=DIR
  python -m ssl_jax.evaluate --workdir W --protocol linear --data_dir=DIR
"""
import ml_collections

from configs import common, simclr_cifar10_resnet18


def get_config():
  c, steps_per_epoch = simclr_cifar10_resnet18.base("barlow_twins", batch_size=256, epochs=1000)
  c.augment = common.augment("byol", blur=False)  # BYOL's asymmetric views, as the paper's
  c.head = common.head(2048, 2048, num_layers=3)

  c.barlow_twins = ml_collections.ConfigDict()
  c.barlow_twins.off_diagonal_weight = 0.0051

  c.optim = common.lars(0.3, warmup_steps=10 * steps_per_epoch, weight_decay=1e-4)
  return c
