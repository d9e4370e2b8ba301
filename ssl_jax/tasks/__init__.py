"""A task binds data, model and objective for one `config.objective`.

The generic train loop (train.py) sees only this interface: it never knows which model,
objective or dataset is behind it.
"""
import dataclasses
from typing import Any, Callable, Optional


@dataclasses.dataclass
class Task:
  # key -> (params, model_state); model_state holds non-trained variables (BN stats, EMA).
  init: Callable
  # (params, model_state, batch, key) -> (loss, (metrics, new_model_state))
  loss_fn: Callable
  # (params, model_state, batch) -> eval sums: additive evaluation statistics (a loss sum,
  # a count, ...), added up over the evaluation batches; finalize_eval(their total) -> metrics
  eval_sums: Callable
  finalize_eval: Callable
  # grain MapDataset of this process's rows of each global batch (infinite)
  train_data: Any
  # list of this process's rows of the evaluation batches
  eval_data: list
  # what one batch counts, for throughput: ("tokens", B*T) or ("images", B)
  unit: tuple
  # Optional: (params, model_state, step) -> model_state after each update (e.g. an EMA)
  after_update: Optional[Callable] = None
  # Optional: (params, model_state, workdir) -> None, run by process 0 when training ends
  on_end: Optional[Callable] = None
  # JSON-able facts saved with each checkpoint (e.g. the tokenizer spec)
  metadata: dict = dataclasses.field(default_factory=dict)


# config.objective -> "module:function" building its Task from the config.
TASKS = {
    "next_token": "ssl_jax.tasks.language:next_token_task",
    "masked_lm": "ssl_jax.tasks.language:masked_lm_task",
    "simclr": "ssl_jax.tasks.vision:simclr_task",
    "byol": "ssl_jax.tasks.momentum:byol_task",
    "mocov3": "ssl_jax.tasks.momentum:mocov3_task",
    "dino": "ssl_jax.tasks.dino:dino_task",
    "mae": "ssl_jax.tasks.mae:mae_task",
    "barlow_twins": "ssl_jax.tasks.joint_embedding:barlow_twins_task",
    "vicreg": "ssl_jax.tasks.joint_embedding:vicreg_task",
    "simsiam": "ssl_jax.tasks.joint_embedding:simsiam_task",
    "clip": "ssl_jax.tasks.two_tower:clip_task",
    "siglip": "ssl_jax.tasks.two_tower:siglip_task",
}
# The image objectives: their checkpoints hold an image encoder at metadata["encoder_path"].
# The two-tower objectives: their checkpoints are evaluated by --protocol retrieval/zeroshot.
TWO_TOWER_OBJECTIVES = ("clip", "siglip")
IMAGE_OBJECTIVES = ("simclr", "byol", "mocov3", "dino", "mae", "barlow_twins", "vicreg",
                    "simsiam")


def make_task(config, axis_name: str | None = None) -> Task:
  """axis_name: the parallel wrapper's named device axis inside the step (set under pmap,
  None under jit over a mesh, where arrays are global and batch norm and contrastive
  negatives already see the whole batch)."""
  import importlib
  from ssl_jax.errors import ConfigError
  if config.objective not in TASKS:
    raise ConfigError(f"Unknown objective {config.objective!r}; known: {', '.join(TASKS)}.")
  module, function = TASKS[config.objective].split(":")
  return getattr(importlib.import_module(module), function)(config, axis_name=axis_name)


def validate(config):
  """The objective's own config checks (its module's `validate`, if it has one): cheap
  cross-field checks that run before data preparation and before the workdir is touched."""
  import importlib
  from ssl_jax.errors import ConfigError
  if config.objective not in TASKS:
    raise ConfigError(f"Unknown objective {config.objective!r}; known: {', '.join(TASKS)}.")
  module = importlib.import_module(TASKS[config.objective].split(":")[0])
  if hasattr(module, "validate"):
    module.validate(config)
