"""SimSiam on CIFAR-10 with ResNet-18: the paper's CIFAR recipe (Chen and He 2021, App. D).

Batch 512, SGD with momentum 0.9, lr 0.03 x batch/256 (0.06), weight decay 5e-4, cosine
decay without warmup, 800 epochs; a 2-layer projector with 2048-d outputs and a batch norm
on them; a bottleneck predictor 2048 -> 512 -> 2048; MoCo v2's views (crop area (0.2, 1),
jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale 0.2, flip) without blur, as the paper says for
32 px images. Expect about 91.8% linear-probe top-1 (the paper's CIFAR-10 figure, 800 epochs).

Not reproduced: the paper's optimizer is plain SGD, which ssl_jax has not; this uses its
LARS with the paper's lr, weight decay and momentum. LARS scales every weight matrix's step
to lr x 0.001 x the matrix's norm (biases and norms get plain SGD steps), so at lr 0.06 the
weights move far less than under SGD: expect to raise the lr (solo-learn's CIFAR SimSiam, also
plain SGD, uses lr 0.5 at batch 256 and reports 90.51%), or add an SGD option to the library.

Needs CIFAR-10 prepared as array_record (no network at run time):
  tfds build cifar10 --file_format=array_record --data_dir=DIR   # where there is network
  python -m ssl_jax.main --config configs/simsiam_cifar10_resnet18.py --workdir W \
      --config.data.data_dir=DIR
  python -m ssl_jax.evaluate --workdir W --protocol linear --data_dir=DIR
"""
import ml_collections

from configs import common, simclr_cifar10_resnet18

TRAIN_IMAGES = simclr_cifar10_resnet18.TRAIN_IMAGES
BATCH_SIZE = 512
EPOCHS = 800


def get_config():
  steps_per_epoch = TRAIN_IMAGES // BATCH_SIZE  # 97
  base = simclr_cifar10_resnet18.get_config()  # its data and ResNet-18 (CIFAR stem, width 64)
  c = common.loop("simsiam", total_steps=EPOCHS * steps_per_epoch, batch_size=BATCH_SIZE,
                  log_every=100, eval_every=10 * steps_per_epoch,
                  eval_steps=20,  # 10k test images
                  checkpoint_every=5 * steps_per_epoch, keep_checkpoints=3)
  c.data, c.model = base.data, base.model

  c.augment = ml_collections.ConfigDict()
  c.augment.preset = "simclr"  # both views alike; strength 0.5: jitter 0.4/0.4/0.4/0.1
  c.augment.strength = 0.5
  c.augment.crop_min_scale = 0.2
  c.augment.blur = False
  c.augment.flip = True

  c.head = ml_collections.ConfigDict()
  c.head.hidden_dim = 2048
  c.head.out_dim = 2048
  c.head.num_layers = 2

  c.simsiam = ml_collections.ConfigDict()
  c.simsiam.predictor_hidden_dim = 512

  c.optim = common.lars(0.03 * c.batch_size / 256, warmup_steps=0, weight_decay=5e-4)
  c.mesh = common.mesh()
  return c
