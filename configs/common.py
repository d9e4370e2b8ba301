"""What every config builds on: the training loop, the optimizers, the mesh, the backends.

A config imports this as `from configs import common` (configs is a package installed with
the checkout), whether it is loaded from the repository root or by an absolute path.
"""
import ml_collections


def loop(objective: str, *, total_steps: int, batch_size: int, log_every: int,
         eval_every: int, eval_steps: int, checkpoint_every: int, keep_checkpoints: int,
         parallel: str = "jit", seed: int = 0) -> ml_collections.ConfigDict:
  """The top-level fields of a run: objective, seed, and how long and how often."""
  c = ml_collections.ConfigDict()
  c.objective = objective
  c.seed = seed
  c.total_steps = total_steps
  c.batch_size = batch_size  # global, over all devices and processes
  c.grad_accum = 1  # micro-batches per update
  c.log_every = log_every
  c.eval_every = eval_every
  c.eval_steps = eval_steps  # batches per evaluation
  c.checkpoint_every = checkpoint_every
  c.keep_checkpoints = keep_checkpoints
  c.parallel = parallel  # "jit" (global arrays on a mesh) or "pmap" (replicated data parallel)
  c.skip_nonfinite = False  # True: a NaN/Inf step is skipped instead of stopping the run
  # Start from other weights (ssl_jax/init_from.py): a workdir, DIR:STEP, or a Hugging Face
  # folder. Ignored when the run resumes from its own checkpoint.
  c.init_from = ""
  c.init_from_strict = True  # False: load what matches, initialise shape conflicts afresh
  return c


def adamw(lr: float, warmup_steps: int, *, min_lr_ratio: float = 0.1, b1: float = 0.9,
          b2: float = 0.95, weight_decay: float = 0.1,
          grad_clip: float = 1.0) -> ml_collections.ConfigDict:
  """AdamW, linear warmup then cosine decay to lr * min_lr_ratio, global-norm clipping."""
  return _optimizer("adamw", lr, warmup_steps, min_lr_ratio, b1, b2, weight_decay, grad_clip)


def lars(lr: float, warmup_steps: int, *, weight_decay: float, min_lr_ratio: float = 0.0,
         momentum: float = 0.9) -> ml_collections.ConfigDict:
  """LARS (SimCLR's optimizer), warmup then cosine; no clipping."""
  return _optimizer("lars", lr, warmup_steps, min_lr_ratio, momentum,
                    0.999,  # b2: unused by LARS
                    weight_decay, 0.0)


def _optimizer(name, lr, warmup_steps, min_lr_ratio, b1, b2, weight_decay, grad_clip):
  c = ml_collections.ConfigDict()
  c.name = name
  c.lr = lr
  c.warmup_steps = warmup_steps
  c.min_lr_ratio = min_lr_ratio
  c.b1 = b1  # LARS: momentum
  c.b2 = b2
  c.weight_decay = weight_decay
  c.grad_clip = grad_clip  # 0: no clipping
  return c


def data(name: str, *, eval_split: str, image_size: int) -> ml_collections.ConfigDict:
  """A TFDS image dataset prepared as array_record: trains on "train", probes on it too."""
  c = ml_collections.ConfigDict()
  c.name = name
  c.source = ""
  c.data_dir = ""  # "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.train_split = "train"
  c.eval_split = eval_split
  c.probe_split = "train"
  c.image_size = image_size
  return c


def augment(preset: str, *, strength: float = 1.0, crop_min_scale: float = 0.08,
            blur: bool = True, flip: bool = True) -> ml_collections.ConfigDict:
  """The views: a preset (simclr, byol, mae: ssl_jax/data/augment.py), its colour-jitter
  strength, the random crop's smallest area, Gaussian blur and horizontal flip."""
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.strength = strength
  c.crop_min_scale = crop_min_scale
  c.blur = blur
  c.flip = flip
  return c


def head(hidden_dim: int, out_dim: int, num_layers: int) -> ml_collections.ConfigDict:
  """The projection head; hidden_dim 0 takes the encoder's feature size."""
  c = ml_collections.ConfigDict()
  c.hidden_dim = hidden_dim
  c.out_dim = out_dim
  c.num_layers = num_layers
  return c


def mesh(fsdp: int = 1) -> ml_collections.ConfigDict:
  """fsdp > 1 splits parameters and optimizer state over that many devices (parallel='jit')."""
  c = ml_collections.ConfigDict()
  c.fsdp = fsdp
  return c


def add_backends(model: ml_collections.ConfigDict, attention: bool = True):
  """How the model computes, never what (ssl_jax/models/layers.py). "auto" takes what was
  measured fastest on the run's platform: on CPU the hand-written dense backward and
  query-blocked causal attention, on GPU cuDNN's fused attention, elsewhere plain XLA.
  attention=False for models without token attention of their own (ResNet, ViT)."""
  model.matmul = "auto"  # or "xla", "cpu"
  if attention:
    model.attention = "auto"  # or "xla", "blocked", "cudnn"


def vit(model: ml_collections.ConfigDict, size: str, patch_size: int, pool: str = "cls"):
  """Makes `model` a ViT of a size preset (tiny, small, base, large: models/vit.py). Its
  depth, width and num_heads are 0, so the preset decides them; a positive value given on
  the command line overrides that one entry."""
  model.name = "vit"
  model.size = size
  model.depth = model.width = model.num_heads = 0
  model.patch_size = patch_size
  model.pool = pool


def vit_model(size: str, patch_size: int, pool: str = "cls") -> ml_collections.ConfigDict:
  """A ViT of a size preset (see vit) with MLP ratio 4, computing in bfloat16."""
  c = ml_collections.ConfigDict()
  vit(c, size, patch_size, pool)
  c.mlp_ratio = 4
  c.dtype = "bfloat16"  # compute dtype; params and the loss stay float32
  add_backends(c, attention=False)
  return c
