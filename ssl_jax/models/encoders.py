"""Image encoders from config.model: images [B, H, W, 3] in [-1, 1] -> features [B, D]."""
import jax.numpy as jnp

from ssl_jax.errors import ConfigError


def image_encoder(cfg, bn_axis_name: str | None = None, platform: str | None = None,
                  pos_grid: int = 0):
  """A ResNet (name "resnet": depth, stem, width) or a ViT (name "vit": size or depth, width
  and num_heads; patch_size, mlp_ratio, pool, matmul), both exposing `features_dim`.
  platform: of the devices the encoder runs on (default: the run's), which resolves
  model.matmul "auto". pos_grid: a ViT's position grid when it also sees other sizes."""
  check_encoder(cfg)
  dtype = jnp.dtype(cfg.get("dtype", "float32"))
  if cfg.name == "resnet":
    from ssl_jax.models.resnet import ResNet
    return ResNet(depth=cfg.depth, stem=cfg.stem, width=cfg.width, bn_axis_name=bn_axis_name,
                  dtype=dtype)
  from ssl_jax.models import layers
  from ssl_jax.models.vit import ViT
  depth, width, num_heads = vit_dims(cfg)
  return ViT(patch_size=cfg.patch_size, depth=depth, width=width, num_heads=num_heads,
             mlp_ratio=cfg.get("mlp_ratio", 4), pool=cfg.pool, dtype=dtype,
             matmul=layers.resolve_backends(cfg, platform)["matmul"], pos_grid=pos_grid)


def vit_dims(cfg) -> tuple[int, int, int]:
  """(depth, width, num_heads): model.size's preset ("" = none), each overridden by a
  positive model.depth / width / num_heads."""
  from ssl_jax.models.vit import SIZES
  size = cfg.get("size", "")
  if size and size not in SIZES:
    raise ConfigError(f"model.size must be one of {', '.join(SIZES)} (or empty), got {size!r}.")
  preset = SIZES.get(size, (0, 0, 0))
  dims = tuple(own if own > 0 else default
               for own, default in zip((cfg.depth, cfg.width, cfg.num_heads), preset))
  if min(dims) <= 0:
    raise ConfigError("A ViT needs model.size or positive model.depth, model.width and "
                      f"model.num_heads; got size={size!r}, depth={cfg.depth}, width={cfg.width}, "
                      f"num_heads={cfg.num_heads}.")
  return dims


def check_encoder(cfg):
  """ConfigError unless image_encoder can build cfg. Touches no device, so it runs before
  distributed initialisation."""
  if cfg.name == "resnet":
    from ssl_jax.models.resnet import STAGES
    if cfg.depth not in STAGES:
      raise ConfigError(f"model.depth={cfg.depth} is not a ResNet depth; use one of "
                        f"{', '.join(map(str, STAGES))}.")
    if cfg.width <= 0:
      raise ConfigError(f"model.width must be positive for a ResNet, got {cfg.width}.")
    if cfg.stem not in ("cifar", "imagenet"):
      raise ConfigError(f"model.stem must be 'cifar' or 'imagenet', got {cfg.stem!r}.")
  elif cfg.name == "vit":
    _, width, num_heads = vit_dims(cfg)
    if width % num_heads:
      raise ConfigError(f"model.width={width} is not divisible by model.num_heads="
                        f"{num_heads}.")
    if cfg.pool not in ("cls", "mean"):
      raise ConfigError(f"model.pool must be 'cls' or 'mean', got {cfg.pool!r}.")
  else:
    raise ConfigError(
        f"model.name must be 'resnet' or 'vit' for an image encoder, got {cfg.name!r}.")


def check_image_size(cfg, image_size: int):
  """ViT patches must tile the image; ResNets take any size but need a few pixels."""
  if cfg.name == "vit" and image_size % cfg.patch_size:
    raise ConfigError(f"data.image_size={image_size} is not a multiple of model.patch_size="
                      f"{cfg.patch_size}.")
  if image_size < 8:
    raise ConfigError(f"data.image_size={image_size} is too small; use at least 8.")
