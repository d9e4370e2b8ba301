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

TRAIN_IMAGES = simclr_cifar10_resnet18.TRAIN_IMAGES
BATCH_SIZE = 256
EPOCHS = 1000


def get_config():
  steps_per_epoch = TRAIN_IMAGES // BATCH_SIZE  # 195
  base = simclr_cifar10_resnet18.get_config()  # its data and ResNet-18 (CIFAR stem, width 64)
  c = common.loop("barlow_twins", total_steps=EPOCHS * steps_per_epoch, batch_size=BATCH_SIZE,
                  log_every=100, eval_every=10 * steps_per_epoch,
                  eval_steps=40,  # 10k test images
                  checkpoint_every=5 * steps_per_epoch, keep_checkpoints=3)
  c.data, c.model = base.data, base.model

  c.augment = ml_collections.ConfigDict()
  c.augment.preset = "byol"  # Barlow Twins uses BYOL's asymmetric views
  c.augment.strength = 1.0
  c.augment.crop_min_scale = 0.08
  c.augment.blur = False
  c.augment.flip = True

  c.head = ml_collections.ConfigDict()
  c.head.hidden_dim = 2048
  c.head.out_dim = 2048
  c.head.num_layers = 3

  c.barlow_twins = ml_collections.ConfigDict()
  c.barlow_twins.off_diagonal_weight = 0.0051

  c.optim = common.lars(0.3, warmup_steps=10 * steps_per_epoch, weight_decay=1e-4)
  c.mesh = common.mesh()
  return c
