"""SimCLR on scikit-learn's digits: the embedded default image job (2-core CPU, < 10 minutes).

A small-width ResNet-18 (CIFAR stem) on the native 8x8 digits. Evaluate the encoder with
  python -m ssl_jax.evaluate --workdir DIR --protocol linear   (or knn, fewshot, finetune)
Results and timings: docs/simclr_digits.md.
"""
import ml_collections

from configs import common


def get_config():
  # parallel="pmap" works too: NT-Xent and batch norm then gather over the device axis.
  c = common.loop("simclr", total_steps=1000, batch_size=128, log_every=50, eval_every=500,
                  eval_steps=4, checkpoint_every=500, keep_checkpoints=2)

  c.data = ml_collections.ConfigDict()
  c.data.name = "digits"  # digits | image_folder | a TFDS image dataset (cifar10, ...)
  c.data.source = ""  # the root directory for image_folder
  c.data.data_dir = ""  # "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.data.train_split = "train"  # pretraining images (labels unused)
  c.data.eval_split = "test"
  c.data.probe_split = "train"  # labelled images the evaluations train on
  c.data.image_size = 8  # native: larger inputs cost more than they add on a CPU

  c.augment = ml_collections.ConfigDict()
  c.augment.preset = "simclr"
  c.augment.strength = 0.5  # colour jitter s; grayscale digits only feel brightness/contrast
  c.augment.crop_min_scale = 0.4  # 8x8 digits have little to spare (0.2: -1 to -3 points)
  c.augment.blur = False  # as SimCLR does for small images
  c.augment.flip = False  # a mirrored digit is often another digit

  c.model = ml_collections.ConfigDict()
  c.model.name = "resnet"
  c.model.depth = 18
  c.model.stem = "cifar"
  c.model.width = 16
  c.model.dtype = "float32"
  # Used when model.name = "vit" (depth and width then count blocks and channels, or set
  # all three of depth, width and num_heads to 0 and name a preset: tiny, small, base, large).
  c.model.size = ""
  c.model.patch_size = 2
  c.model.num_heads = 4
  c.model.mlp_ratio = 4
  c.model.pool = "mean"  # or "cls"
  common.add_backends(c.model, attention=False)

  c.head = ml_collections.ConfigDict()
  c.head.hidden_dim = 0  # 0 = the encoder's feature size
  c.head.out_dim = 64
  c.head.num_layers = 2

  c.simclr = ml_collections.ConfigDict()
  c.simclr.temperature = 0.5  # as SimCLR on CIFAR (0.2: -1 to -3 points here)

  c.optim = common.lars(1.0 * c.batch_size / 256,  # SimCLR's linear scaling
                       warmup_steps=50, weight_decay=1e-5)
  c.mesh = common.mesh()
  return c
