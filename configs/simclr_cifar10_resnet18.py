"""SimCLR on CIFAR-10 with ResNet-18: the standard GPU/TPU recipe (Chen et al. 2020, B.9).

Batch 512, LARS (lr 1.0 x batch/256, weight decay 1e-4, momentum 0.9), 10 warmup epochs
then cosine, 1000 epochs, temperature 0.5, colour jitter strength 0.5 and no blur, as the
SimCLR repository's CIFAR-10 command. Expect about 90% linear-probe top-1.

Needs CIFAR-10 prepared as array_record (no network at run time):
  tfds build cifar10 --file_format=array_record --data_dir=DIR   # where there is network
  python -m ssl_jax.main --config configs/simclr_cifar10_resnet18.py --workdir W \
      --config.data.data_dir=DIR
  python -m ssl_jax.evaluate --workdir W --protocol linear --data_dir=DIR
"""
import ml_collections

from configs import common

TRAIN_IMAGES = 50_000
BATCH_SIZE = 512


def get_config():
  steps_per_epoch = TRAIN_IMAGES // BATCH_SIZE
  c = common.loop("simclr", total_steps=1000 * steps_per_epoch, batch_size=BATCH_SIZE,
                  log_every=100, eval_every=10 * steps_per_epoch,
                  eval_steps=20,  # 10k test images
                  checkpoint_every=5 * steps_per_epoch, keep_checkpoints=3)

  c.data = ml_collections.ConfigDict()
  c.data.name = "cifar10"
  c.data.source = ""
  c.data.data_dir = ""  # "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.data.train_split = "train"
  c.data.eval_split = "test"
  c.data.probe_split = "train"
  c.data.image_size = 32

  c.augment = ml_collections.ConfigDict()
  c.augment.preset = "simclr"
  c.augment.strength = 0.5
  c.augment.crop_min_scale = 0.08
  c.augment.blur = False
  c.augment.flip = True

  c.model = ml_collections.ConfigDict()
  c.model.name = "resnet"
  c.model.depth = 18
  c.model.stem = "cifar"
  c.model.width = 64
  c.model.dtype = "bfloat16"  # compute dtype; params, BN statistics and the loss stay float32
  common.add_backends(c.model, attention=False)

  c.head = ml_collections.ConfigDict()
  c.head.hidden_dim = 0  # the encoder's width (512)
  c.head.out_dim = 128
  c.head.num_layers = 2

  c.simclr = ml_collections.ConfigDict()
  c.simclr.temperature = 0.5

  c.optim = common.lars(1.0 * c.batch_size / 256, warmup_steps=10 * steps_per_epoch,
                       weight_decay=1e-4)
  c.mesh = common.mesh()
  return c
