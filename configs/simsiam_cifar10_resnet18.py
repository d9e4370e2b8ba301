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


def get_config():
  c, _ = simclr_cifar10_resnet18.base("simsiam", batch_size=512, epochs=800)
  # Both views alike; strength 0.5: jitter 0.4/0.4/0.4/0.1
  c.augment = common.augment("simclr", strength=0.5, crop_min_scale=0.2, blur=False)
  c.head = common.head(2048, 2048, num_layers=2)

  c.simsiam = ml_collections.ConfigDict()
  c.simsiam.predictor_hidden_dim = 512

  c.optim = common.lars(0.03 * c.batch_size / 256, warmup_steps=0, weight_decay=5e-4)
  return c
