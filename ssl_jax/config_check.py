"""Checks that run before anything is built or written: config fields, paths, the workdir.

RULES maps a dotted field name to the range it must lie in. A field is checked only where a
config has it (only image configs have augment.*, only BERT has mlm.*); OBJECTIVE_RULES
narrow a few fields for one objective. Every problem found goes into one ConfigError, so
the user sees all of them in one paragraph. Types are already enforced by ml_collections.
"""
import math
import os

from ssl_jax import storage
from ssl_jax.errors import ConfigError
from ssl_jax.models.layers import ATTENTION_CHOICES, MATMUL_CHOICES
from ssl_jax.tasks import IMAGE_OBJECTIVES, TASKS, TWO_TOWER_OBJECTIVES

STDLIB_SOURCE = "stdlib"  # data.source naming the interpreter's standard library
# data.name values that read data.source, and what it names.
LOCAL_DATASETS = {"local_text": "a glob of text files", "image_folder": "a folder of images",
                  "code_pairs": "a glob of Python files (or 'stdlib')",
                  "image_text_folder": "a folder of images with same-named .txt captions"}
DTYPES = ("float32", "bfloat16")


def _number(test, says: str, integer: bool = False):
  """A rule for a finite number (an int where `integer`) that passes `test`."""
  kinds = (int,) if integer else (int, float)

  def rule(value):
    ok = (isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
          and test(value))
    return None if ok else says
  return rule


def one_of(*choices):
  return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


def _non_empty(value):
  return None if isinstance(value, str) and value.strip() else "must not be empty"


POSITIVE_INT = _number(lambda v: v > 0, "must be a positive integer", integer=True)
NON_NEGATIVE_INT = _number(lambda v: v >= 0, "must be 0 or a positive integer", integer=True)
POSITIVE = _number(lambda v: v > 0, "must be positive")
NON_NEGATIVE = _number(lambda v: v >= 0, "must be 0 or more")
FRACTION = _number(lambda v: 0 <= v < 1, "must be in [0, 1)")
UNIT = _number(lambda v: 0 <= v <= 1, "must be in [0, 1]")
SCALE = _number(lambda v: 0 < v <= 1, "must be in (0, 1]")
NON_EMPTY = _non_empty

RULES = {
    "objective": one_of(*TASKS),
    "seed": _number(lambda v: -2 ** 63 <= v < 2 ** 63, "must be a 64-bit integer", integer=True),
    "total_steps": POSITIVE_INT,
    "batch_size": POSITIVE_INT,
    "grad_accum": POSITIVE_INT,
    "log_every": POSITIVE_INT,
    "eval_every": POSITIVE_INT,
    "eval_steps": POSITIVE_INT,
    "checkpoint_every": POSITIVE_INT,
    # 0 would keep no checkpoint, and the next start would train from scratch.
    "keep_checkpoints": _number(lambda v: v >= 1, "must be at least 1", integer=True),
    "parallel": one_of("jit", "pmap"),
    "data.name": NON_EMPTY,
    "data.text_key": NON_EMPTY,
    "data.train_split": NON_EMPTY,
    "data.eval_split": NON_EMPTY,
    "data.probe_split": NON_EMPTY,
    "data.tokenizer": one_of("bytes", "sentencepiece", "words"),
    "data.vocab_size": NON_NEGATIVE_INT,
    "data.seq_len": POSITIVE_INT,
    "data.image_size": _number(lambda v: v >= 8, "must be an integer of at least 8", integer=True),
    "data.text_len": POSITIVE_INT,
    "data.pair_len": POSITIVE_INT,
    "model.name": one_of("gpt", "bert", "lstm", "resnet", "vit"),
    "model.num_layers": POSITIVE_INT,
    "model.num_heads": POSITIVE_INT,
    "model.width": POSITIVE_INT,
    "model.mlp_ratio": POSITIVE_INT,
    "model.dropout": FRACTION,
    "model.position": one_of("learned", "rope"),
    "model.max_len": POSITIVE_INT,
    "model.dtype": one_of(*DTYPES),
    "model.depth": POSITIVE_INT,
    "model.size": one_of("", "tiny", "small", "base", "large"),
    "model.stem": one_of("cifar", "imagenet"),
    "model.patch_size": POSITIVE_INT,
    "model.pool": one_of("mean", "cls"),
    "model.attention": one_of(*ATTENTION_CHOICES),
    "model.matmul": one_of(*MATMUL_CHOICES),
    "model.mlm_head": one_of("tied", "transform"),
    "model.layer_norm_eps": POSITIVE,
    "model.embed_init_std": POSITIVE,
    "head.hidden_dim": NON_NEGATIVE_INT,  # 0: the encoder's feature size
    "head.out_dim": POSITIVE_INT,
    "head.num_layers": POSITIVE_INT,
    "simclr.temperature": POSITIVE,
    "byol.base_decay": FRACTION,
    "mocov3.temperature": POSITIVE,
    "mocov3.base_momentum": FRACTION,
    "mocov3.predictor_hidden_dim": NON_NEGATIVE_INT,
    "dino.num_prototypes": POSITIVE_INT,
    "dino.student_temp": POSITIVE,
    "dino.teacher_temp": POSITIVE,
    "dino.warmup_teacher_temp": POSITIVE,
    "dino.warmup_teacher_temp_steps": NON_NEGATIVE_INT,
    "dino.center_momentum": FRACTION,
    "dino.base_momentum": FRACTION,
    "mae.mask_ratio": _number(lambda v: 0 < v < 1, "must be in (0, 1)"),
    "mae.decoder_width": POSITIVE_INT,
    "mae.decoder_depth": POSITIVE_INT,
    "mae.decoder_heads": POSITIVE_INT,
    "barlow_twins.off_diagonal_weight": NON_NEGATIVE,
    "vicreg.invariance_weight": NON_NEGATIVE,
    "vicreg.variance_weight": NON_NEGATIVE,
    "vicreg.covariance_weight": NON_NEGATIVE,
    "simsiam.predictor_hidden_dim": POSITIVE_INT,
    "mlm.rate": SCALE,
    "mlm.masking": one_of("token", "span"),
    "mlm.span_length": POSITIVE_INT,
    "mlm.deletion_rate": FRACTION,
    "augment.preset": one_of("simclr", "byol", "crop_flip", "mae"),
    "augment.local_crops": NON_NEGATIVE_INT,
    "augment.local_size": _number(lambda v: v >= 4, "must be an integer of at least 4",
                                  integer=True),
    "augment.local_crop_min_scale": SCALE,
    "augment.strength": NON_NEGATIVE,
    "augment.crop_min_scale": SCALE,
    "optim.name": one_of("adamw", "lars"),
    "optim.lr": POSITIVE,
    "optim.warmup_steps": NON_NEGATIVE_INT,
    "optim.min_lr_ratio": UNIT,
    "optim.b1": FRACTION,
    "optim.b2": FRACTION,
    "optim.weight_decay": NON_NEGATIVE,
    "optim.grad_clip": NON_NEGATIVE,  # 0: no clipping
    "mesh.fsdp": POSITIVE_INT,
    "towers.embed_dim": POSITIVE_INT,
    "siglip.init_bias": _number(lambda v: abs(v) <= 100, "must be in [-100, 100]"),
    "pair_model.name": one_of("shared", "gpt", "bert", "vit", "resnet"),
    "pair_model.num_heads": NON_NEGATIVE_INT,  # 0: a ViT's size preset decides
    "pair_model.width": NON_NEGATIVE_INT,
    "pair_model.depth": NON_NEGATIVE_INT,
    "pair_model.size": one_of("", "tiny", "small", "base", "large"),
    "pair_model.patch_size": POSITIVE_INT,
    "pair_model.pool": one_of("mean", "cls"),
    "pair_model.dtype": one_of(*DTYPES),
    "pair_model.matmul": one_of(*MATMUL_CHOICES),
}

# Fields added after runs were recorded, with the value those runs had (run.json and
# checkpoints without them resume and evaluate as before).
ADDED_FIELDS = {"model.attention": "auto", "model.matmul": "auto", "init_from": "",
                "init_from_strict": True, "model.mlm_head": "tied",
                "model.layer_norm_eps": 1e-6, "model.embed_init_std": 0.02}

# What one objective needs beyond RULES (a field here replaces its RULES entry).
_CONTRASTIVE = {
    "model.name": one_of("resnet", "vit"),
    # Contrastive losses need negatives; batch norm needs more than one example.
    "batch_size": _number(lambda v: v >= 2, "must be at least 2", integer=True),
    # 0: from a ViT's model.size preset (models/encoders.py checks the resolved values).
    "model.depth": NON_NEGATIVE_INT,
    "model.width": NON_NEGATIVE_INT,
    "model.num_heads": NON_NEGATIVE_INT,
}
OBJECTIVE_RULES = {
    "next_token": {"model.name": one_of("gpt", "lstm")},  # a causal model: no peeking ahead
    "masked_lm": {"model.name": one_of("bert")},
    **{name: _CONTRASTIVE for name in IMAGE_OBJECTIVES},
    "mae": {**_CONTRASTIVE, "model.name": one_of("vit")},  # masking needs patches
    # model is the text tower; pair_model the other side (tasks/two_tower.py).
    **{name: {"model.name": one_of("gpt", "bert"), "batch_size": _CONTRASTIVE["batch_size"]}
       for name in TWO_TOWER_OBJECTIVES},
}


def set_fields(config, changes: dict):
  """Applies {"dotted.field": value} changes to config in place; returns it."""
  for key, value in changes.items():
    *path, last = key.split(".")
    node = config
    for part in path:
      node = node[part]
    node[last] = value
  return config


def _lookup(config, name: str):
  """(True, value) of a dotted field, or (False, None) where the config lacks it."""
  node = config
  for part in name.split("."):
    if not hasattr(node, "keys") or part not in node:
      return False, None
    node = node[part]
  return True, node


def _problems(config) -> list[str]:
  rules = {**RULES, **OBJECTIVE_RULES.get(_lookup(config, "objective")[1], {})}
  out = []
  for name, rule in rules.items():
    found, value = _lookup(config, name)
    says = rule(value) if found else None
    if says:
      out.append(f"{name} {says}; got {value!r}.")
  _, data_name = _lookup(config, "data.name")
  found, source = _lookup(config, "data.source")
  if data_name in LOCAL_DATASETS and found and not str(source).strip():
    what = LOCAL_DATASETS[data_name]
    out.append(f"data.source must name {what} when data.name={data_name!r}; it is empty.")
  _, tokenizer = _lookup(config, "data.tokenizer")
  _, vocab = _lookup(config, "data.vocab_size")
  minimum = {"sentencepiece": 512, "words": 3}.get(tokenizer)
  if minimum and isinstance(vocab, int) and vocab < minimum:
    out.append(f"data.vocab_size must be at least {minimum} for data.tokenizer={tokenizer!r}; "
               f"got {vocab}.")
  return out


def check(config, objective_checks: bool = True):
  """ConfigError naming every field out of range; then the objective's own checks."""
  problems = _problems(config)
  if problems:
    raise ConfigError(" ".join(problems))
  if objective_checks:
    from ssl_jax import tasks
    tasks.validate(config)


def check_local_path(what: str, path: str):
  """ConfigError for a URL where only a local path works (a text corpus or image folder is
  read file by file with the standard library)."""
  if storage.is_url(path):
    raise ConfigError(
        f"{what}={path}: must be a local or mounted path. To train on data in object storage, "
        "prepare it as a TFDS dataset into a gs:// data_dir (data.data_dir) instead.")


def resolve_paths(config):
  """Makes data.source and data.data_dir absolute (in place), so the recorded config still
  names the same files when a run is resumed or evaluated from another directory.
  data.data_dir may be a gs:// URL."""
  if "data" not in config:
    return
  data = config.data
  if "source" in data and data.get("name") in LOCAL_DATASETS:
    source = str(data.source)
    check_local_path("data.source", source)
    if source.strip() and source != STDLIB_SOURCE:
      data.source = os.path.abspath(os.path.expanduser(source))
  if "data_dir" in data and data.data_dir:
    data.data_dir = storage.resolve("data.data_dir", data.data_dir)


def check_data_dir(config):
  """ConfigError unless a gs:// data.data_dir's bucket exists and can be read."""
  data_dir = config.get("data", {}).get("data_dir")
  if data_dir and storage.is_url(data_dir):
    storage.check_url("data.data_dir", data_dir, write=False)


def check_workdir(workdir: str):
  """ConfigError unless workdir is (or can be created as) a writable directory, or a gs://
  location this account can write; creates nothing."""
  if storage.is_url(workdir):
    storage.check_url("--workdir", storage.resolve("--workdir", workdir), write=True)
    return
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise ConfigError(f"--workdir {path} is a file, not a directory; choose another --workdir.")
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ConfigError(f"--workdir {path} cannot be created: {existing} is a file, not a "
                      "directory; choose another --workdir.")
  read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
  if read_only or not os.access(existing, os.W_OK | os.X_OK):
    why = "is on a read-only filesystem" if read_only else "is not writable by this user"
    raise ConfigError(f"--workdir {path} cannot be written: {existing} {why}; choose another "
                      "--workdir.")


def config_spec(argv) -> str | None:
  """The value of --config in a command line (PATH or PATH:ARGS), or None."""
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if spec is None and "--config" in argv[:-1]:
    spec = argv[argv.index("--config") + 1]
  return spec


def config_file_error(spec: str) -> str | None:
  """Why `--config spec` (PATH or PATH:ARGS) cannot be loaded, in one line; None if it can.

  Runs the file the way ml_collections will, so that a syntax error, an exception or a
  missing import is reported once, naming the file, instead of as a traceback.
  """
  import importlib.util
  import traceback
  import ml_collections
  path, *args = spec.split(":", 1)
  if not os.path.isfile(path):
    return f"--config {path}: " + ("not a file." if os.path.exists(path) else "no such file.")
  try:
    module_spec = importlib.util.spec_from_file_location("_ssl_jax_config_file", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not callable(getattr(module, "get_config", None)):
      return f"--config {path} defines no get_config() function."
    config = module.get_config(*args)
  except Exception as e:  # whatever the file raises is a problem of the file
    if isinstance(e, SyntaxError):
      return f"could not load --config {path}: {type(e).__name__}: {e}"
    here = os.path.abspath(path)
    lines = [f.lineno for f in traceback.extract_tb(e.__traceback__)
             if os.path.abspath(f.filename) == here]
    where = f" ({path}, line {lines[-1]})" if lines else ""
    return f"could not load --config {path}: {type(e).__name__}: {e}{where}"
  if not isinstance(config, ml_collections.ConfigDict):
    return (f"--config {path}: get_config() returned {type(config).__name__}, not an "
            "ml_collections.ConfigDict.")
  return None
