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
TEST_IMAGES = 10_000


def base(objective: str, batch_size: int, epochs: int,
         model: ml_collections.ConfigDict | None = None) -> tuple[ml_collections.ConfigDict, int]:
  """What the CIFAR-10 recipes share: the loop (log every 100 steps, evaluate every 10 epochs
  on all test images, checkpoint every 5), the data, the model (by default ResNet-18 with the
  CIFAR stem, width 64) and the mesh. Returns the config and the steps per epoch."""
  steps_per_epoch = TRAIN_IMAGES // batch_size
  c = common.loop(objective, total_steps=epochs * steps_per_epoch, batch_size=batch_size,
                  log_every=100, eval_every=10 * steps_per_epoch,
                  eval_steps=-(-TEST_IMAGES // batch_size),  # rounded up: every test image
                  checkpoint_every=5 * steps_per_epoch, keep_checkpoints=3)
  c.data = common.data("cifar10", eval_split="test", image_size=32)
  if model is None:
    model = ml_collections.ConfigDict()
    model.name = "resnet"
    model.depth = 18
    model.stem = "cifar"
    model.width = 64
    model.dtype = "bfloat16"  # compute dtype; params, BN statistics and the loss stay float32
    common.add_backends(model, attention=False)
  c.model = model
  c.mesh = common.mesh()
  return c, steps_per_epoch


def get_config():
  c, steps_per_epoch = base("simclr", batch_size=512, epochs=1000)
  c.augment = common.augment("simclr", strength=0.5, blur=False)
  c.head = common.head(hidden_dim=0, out_dim=128, num_layers=2)  # 0: the encoder's width (512)

  c.simclr = ml_collections.ConfigDict()
  c.simclr.temperature = 0.5

  c.optim = common.lars(1.0 * c.batch_size / 256, warmup_steps=10 * steps_per_epoch,
                       weight_decay=1e-4)
  return c
