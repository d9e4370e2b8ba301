"""BYOL on CIFAR-10 with ResNet-18 (Grill et al. 2020), as solo-learn's CIFAR-10 recipe.

The BYOL paper trains on ImageNet only, so this takes solo-learn's published CIFAR
hyperparameters (da Costa et al. 2022, scripts/pretrain/cifar/byol.yaml): batch 256, LARS
lr 1.0 (not scaled with the batch), weight decay 1e-5, momentum 0.9, 10 warmup epochs then
cosine to 0, 1000 epochs; projector 4096 -> 256 (one hidden layer with batch norm), a
predictor of the same shape; target EMA 0.99 raised to 1 by a cosine; BYOL's asymmetric
views (jitter 0.4/0.4/0.2/0.1, grayscale, solarize on the second view only) with crop area
(0.08, 1) and no blur on 32 px images. Expect about 92.6% top-1 (solo-learn reports 92.58%,
with its online linear classifier).

Not reproduced: solo-learn's LARS uses trust coefficient 0.02 and caps each layer's
adaptive lr at the scheduled lr (clip_lr); ssl_jax's LARS (optax) has 0.001 and no cap, so
weight-matrix steps can be up to 20x smaller at the same lr (biases and norms, which skip
the trust ratio in both, match). The lr may need retuning for the same accuracy.

Needs CIFAR-10 prepared as array_record (no network at run time):
  tfds build cifar10 --file_format=array_record --data_dir=DIR   # where there is network
  python -m ssl_jax.main --config configs/byol_cifar10_resnet18.py --workdir W \
      --config.data.data_dir=DIR
  python -m ssl_jax.evaluate --workdir W --protocol linear --data_dir=DIR
"""
import ml_collections

from configs import common, simclr_cifar10_resnet18


def get_config():
  c, steps_per_epoch = simclr_cifar10_resnet18.base("byol", batch_size=256, epochs=1000)
  c.augment = common.augment("byol", blur=False)
  c.head = common.head(4096, 256, num_layers=2)  # the predictor has the same hidden width

  c.byol = ml_collections.ConfigDict()
  c.byol.base_decay = 0.99

  c.optim = common.lars(1.0, warmup_steps=10 * steps_per_epoch, weight_decay=1e-5)
  return c
