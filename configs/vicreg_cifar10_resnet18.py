"""VICReg on CIFAR-10 with ResNet-18 (Bardes, Ponce and LeCun 2022), as solo-learn's recipe.

The VICReg paper pretrains on ImageNet only, so this takes solo-learn's published CIFAR
hyperparameters (da Costa et al. 2022, scripts/pretrain/cifar/vicreg.yaml): batch 256, LARS
lr 0.3 (not scaled with the batch), weight decay 1e-4, momentum 0.9, 10 warmup epochs then
cosine to 0, 1000 epochs; expander 2048-2048-2048 (two hidden layers with batch norm);
invariance, variance and covariance weights 25, 25 and 1 (the paper's); views with crop
area (0.2, 1), jitter 0.4/0.4/0.2/0.1, grayscale and flip, no blur. Expect about 92.1% top-1
(solo-learn reports 92.07%, with its online linear classifier).

Not reproduced:
  - solo-learn solarizes each view with probability 0.1; the byol preset here solarizes the
    second view with 0.2 and the first never (the same 0.1 on average);
  - solo-learn's LARS uses trust coefficient 0.02 and caps each layer's adaptive lr at the
    scheduled lr (clip_lr); ssl_jax's LARS (optax) has 0.001 and no cap, so weight-matrix
    steps can be up to 20x smaller at the same lr. The lr may need retuning.

Needs CIFAR-10 prepared as array_record (no network at run time):
  tfds build cifar10 --file_format=array_record --data_dir=DIR   # where there is network
  python -m ssl_jax.main --config configs/vicreg_cifar10_resnet18.py --workdir W \
      --config.data.data_dir=DIR
  python -m ssl_jax.evaluate --workdir W --protocol linear --data_dir=DIR
"""
import ml_collections

from configs import common, simclr_cifar10_resnet18


def get_config():
  c, steps_per_epoch = simclr_cifar10_resnet18.base("vicreg", batch_size=256, epochs=1000)
  # byol: jitter 0.4/0.4/0.2/0.1 as solo-learn's VICReg views
  c.augment = common.augment("byol", crop_min_scale=0.2, blur=False)
  c.head = common.head(2048, 2048, num_layers=3)

  c.vicreg = ml_collections.ConfigDict()
  c.vicreg.invariance_weight = 25.0
  c.vicreg.variance_weight = 25.0
  c.vicreg.covariance_weight = 1.0

  c.optim = common.lars(0.3, warmup_steps=10 * steps_per_epoch, weight_decay=1e-4)
  return c
