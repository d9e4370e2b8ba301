"""Start from weights made elsewhere: --config.init_from=PATH (main), --init_from PATH (evaluate).

PATH is an ssl_jax workdir (its newest readable checkpoint, or `DIR:STEP`) or a Hugging Face
folder in one of the formats ssl_jax/convert/ reads. Variables whose names and shapes match
the new run's are loaded; the others keep their fresh initialisation. Names are matched two
ways and the better one is taken: the whole tree as it is (continued pretraining, the same
model), or the source's encoder placed where the run keeps its encoder (a SimCLR encoder
inside BYOL, an exported ViT inside a SimCLR run). A run that resumes from its own
checkpoint never reads PATH.

Refused with ConfigError (exit 2): nothing matches, or a name matches with another shape,
unless config.init_from_strict=False, which loads what fits and reports the rest.
"""
import dataclasses
import json
import re

import numpy as np

from ssl_jax import convert, storage
from ssl_jax.errors import ConfigError

REPORT_FILE = "init_from.json"  # in the workdir: what was loaded, new, mismatched, unused


@dataclasses.dataclass
class Source:
  path: str
  kind: str  # "workdir" or "huggingface"
  step: int | None
  variables: dict  # {"params": tree, other collections...}, nested dicts of numpy arrays
  # Where the encoder sits in each collection ("a/b"); "" when the variables are an image
  # encoder's own; None for language models (the whole model is the encoder).
  encoder_path: str | None
  config: dict  # the ssl_jax config that built these weights (synthesised for foreign ones)
  metadata: dict  # tokenizer spec, vocab_size, mask_id, image_size where known

  def describe(self) -> str:
    at = f" step {self.step}" if self.step is not None else ""
    return f"{self.kind} {self.path}{at}"


def split_spec(spec: str) -> tuple[str, int | None]:
  """("DIR", STEP) of "DIR:STEP"; ("DIR", None) otherwise (gs:// URLs keep their colon)."""
  match = re.fullmatch(r"(.+):(\d+)", spec)
  if match:
    return match.group(1), int(match.group(2))
  return spec, None


def read(spec: str) -> Source:
  """The weights at `spec`; ConfigError if there are none or they cannot be read."""
  if not spec or not str(spec).strip():
    raise ConfigError("init_from is empty; name an ssl_jax workdir (DIR or DIR:STEP) or a "
                      "Hugging Face folder.")
  path, step = split_spec(str(spec).strip())
  path = storage.resolve("init_from", path)
  if not storage.isdir(path):
    raise ConfigError(f"init_from={spec}: no such directory.")
  if storage.isdir(storage.join(path, "checkpoints")):
    return _read_workdir(path, step)
  if step is not None:
    raise ConfigError(f"init_from={spec}: a step (:N) applies to an ssl_jax workdir; {path} "
                      "has no checkpoints/.")
  if storage.exists(storage.join(path, convert.CONFIG_FILE)):
    return _read_hf(path)
  raise ConfigError(f"init_from={spec}: {path} is neither an ssl_jax workdir (no checkpoints/) "
                    f"nor a Hugging Face folder (no {convert.CONFIG_FILE}).")


def _read_workdir(path: str, step: int | None) -> Source:
  from ssl_jax.checkpoint import load_step
  step, params, model_state, metadata = load_step(path, step)
  variables = {"params": _numpy(params), **_numpy(dict(model_state))}
  meta = {k: v for k, v in metadata.items() if k != "config"}
  return Source(path, "workdir", step, variables, metadata.get("encoder_path"),
                metadata["config"], meta)


def _read_hf(path: str) -> Source:
  hf_config, tensors = convert.load(path)
  module = convert.module_for_hf(hf_config)
  variables, fields = module.from_hf(hf_config, tensors)
  variables = _numpy(variables)
  image = module.__name__.rsplit(".", 1)[-1] in ("vit", "resnet")
  run = hf_config.get(convert.RUN_KEY)
  if isinstance(run, dict) and isinstance(run.get("config"), dict):
    config, metadata, step = run["config"], dict(run.get("metadata", {})), run.get("step")
  else:
    config, metadata, step = _foreign_config(module, fields, hf_config, path), {}, None
    if not image:
      from ssl_jax.convert import tokenizer
      tok = tokenizer.load(path)
      metadata = {"tokenizer": tok.spec, "vocab_size": tok.vocab_size}
    elif "image_size" in hf_config:
      metadata = {"image_size": int(hf_config["image_size"])}
  if image:
    metadata["encoder_path"] = ""
  return Source(path, "huggingface", step, variables, "" if image else None, config, metadata)


def _foreign_config(module, fields: dict, hf_config: dict, path: str) -> dict:
  """An ssl_jax config for weights exported by another library: the model fields from the
  converter, the defaults every model reads, and the objective that matches the head."""
  name = fields.get("name")
  model = {"dtype": "float32", "dropout": 0.0, "remat": False, "matmul": "auto", **fields}
  if name in ("gpt", "bert", "lstm"):
    model.setdefault("attention", "auto")
    objective = "masked_lm" if name == "bert" else "next_token"
    max_len = int(model.get("max_len", 128))
    return {"objective": objective, "model": model,
            "data": {"name": "stdlib", "seq_len": min(max_len, 256), "source": "",
                     "data_dir": ""}}
  return {"objective": "image_encoder", "model": model,
          "augment": {"flip": True},  # the fine-tune protocol's crop-and-flip views
          "data": {"image_size": int(hf_config.get("image_size", 0)), "source": "",
                   "data_dir": ""}}


def _numpy(tree):
  if isinstance(tree, dict) or hasattr(tree, "items"):
    return {str(k): _numpy(v) for k, v in tree.items()}
  return np.asarray(tree)


def _flatten(tree, prefix: str = "") -> dict:
  out = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict) or hasattr(value, "items"):
      out.update(_flatten(value, name + "/"))
    else:
      out[name] = value
  return out


def _subtree(tree: dict, path: str):
  for part in [p for p in path.split("/") if p]:
    if not isinstance(tree, dict) or part not in tree:
      return None
    tree = tree[part]
  return tree


def _candidates(source: Source, target_encoder_path: str | None) -> list[tuple[str, dict]]:
  """(how, {name: array}) ways to read the source's variables under the target's names."""
  out = [("as saved", _flatten(source.variables))]
  if source.encoder_path is not None and target_encoder_path is not None:
    placed = {}
    for collection, tree in source.variables.items():
      sub = _subtree(tree, source.encoder_path)
      if isinstance(sub, dict):
        prefix = "/".join(p for p in (collection, target_encoder_path) if p)
        placed.update(_flatten(sub, prefix + "/"))
    out.append((f"encoder placed at {target_encoder_path}", placed))
  return out


@dataclasses.dataclass
class Report:
  source: str
  how: str
  loaded: list  # [(name, shape)]
  new: list  # in the run only: freshly initialised
  mismatched: list  # [(name, run shape, source shape)]: freshly initialised
  unused: list  # in the source only
  notes: list = dataclasses.field(default_factory=list)  # same shapes, other computation

  def table(self) -> str:
    def count(names):
      return sum(int(np.prod(shape)) for _, shape, *_ in names)
    rows = [("loaded", self.loaded), ("new (initialised)", self.new),
            ("mismatched (initialised)", self.mismatched), ("unused from source", self.unused)]
    lines = [f"init_from {self.source} ({self.how}):",
             f"  {'':26} {'tensors':>8} {'values':>12}  examples"]
    for label, names in rows:
      shown = ", ".join(_example(n) for n in names[:3]) + (" ..." if len(names) > 3 else "")
      lines.append(f"  {label:26} {len(names):8d} {count(names):12,d}  {shown}")
    return "\n".join(lines + [f"  note: {note}" for note in self.notes])

  def to_json(self) -> str:
    return json.dumps({"source": self.source, "how": self.how,
                       "loaded": [n for n, _ in self.loaded], "new": [n for n, _ in self.new],
                       "mismatched": [{"name": n, "run": list(a), "source": list(b)}
                                      for n, a, b in self.mismatched],
                       "unused": [n for n, _ in self.unused], "notes": self.notes}, indent=1)


def _example(entry) -> str:
  name, shape, *other = entry
  return f"{name}{list(shape)}" + (f"<-{list(other[0])}" if other else "")


def _part_candidates(source: Source, part: str) -> list[tuple[str, dict]]:
  """The source's encoder (a language model's whole model) placed at `part` of the run."""
  placed = {}
  for collection, tree in source.variables.items():
    sub = _subtree(tree, source.encoder_path) if source.encoder_path else tree
    if isinstance(sub, dict):
      placed.update(_flatten(sub, f"{collection}/{part}/"))
  return [(f"encoder placed at {part}", placed)]


def match(target_shapes: dict, target_encoder_path: str | None, source: Source,
          strict: bool = True, part: str | None = None) -> tuple[dict, Report]:
  """({name: array to load}, Report) for a run whose variables have `target_shapes`
  ({"collection/a/b": shape}). ConfigError (strict) when nothing matches or shapes conflict.
  part: load the source's encoder into this subtree of the run only (one of two towers)."""
  best = None
  if part is not None:
    target_shapes = {n: s for n, s in target_shapes.items()
                     if n.split("/", 1)[1].startswith(part + "/")}
  candidates = (_part_candidates(source, part) if part is not None
                else _candidates(source, target_encoder_path))
  for how, flat in candidates:
    same = [n for n in target_shapes if n in flat]
    if best is None or len(same) > len(best[2]):
      best = (how, flat, same)
  how, flat, same = best
  loaded = [(n, target_shapes[n]) for n in same if tuple(flat[n].shape) == tuple(target_shapes[n])]
  mismatched = [(n, tuple(target_shapes[n]), tuple(flat[n].shape)) for n in same
                if tuple(flat[n].shape) != tuple(target_shapes[n])]
  new = [(n, s) for n, s in target_shapes.items() if n not in flat]
  unused = [(n, tuple(a.shape)) for n, a in flat.items() if n not in target_shapes]
  report = Report(source.describe(), how, loaded, new, mismatched, unused)
  relax = "set --config.init_from_strict=false to load what fits and initialise the rest"
  if strict and mismatched:
    shown = "; ".join(_example(m) for m in mismatched[:4])
    raise ConfigError(f"init_from={source.path}: {len(mismatched)} variable(s) have other "
                      f"shapes than this run's ({shown} -- run<-source); make the model config "
                      f"match the source, or {relax}.")
  if strict and not loaded:
    theirs = ", ".join(list(flat)[:3]) or "nothing"
    ours = ", ".join(list(target_shapes)[:3])
    raise ConfigError(f"Nothing in init_from={source.path} matches this run's variables "
                      f"(the source has {theirs}, ...; the run has {ours}, ...): is it the same "
                      f"kind of model? Or {relax}.")
  return {n: flat[n] for n, _ in loaded}, report


def _named_leaves(state):
  """(names "collection/a/b", leaves, treedef) of a TrainState's params and model_state."""
  import jax
  variables = {"params": state.params, **dict(state.model_state)}
  leaves, treedef = jax.tree_util.tree_flatten_with_path(variables)
  names = ["/".join(str(getattr(k, "key", k)) for k in path) for path, _ in leaves]
  return names, [leaf for _, leaf in leaves], treedef


@dataclasses.dataclass
class Plan:
  """What a fresh run loads, decided (and refused) before the workdir is touched."""
  arrays: dict  # {name: numpy array} to load
  report: Report

  def apply(self, state, workdir: str, log):
    """The TrainState with the planned arrays in place: each keeps the sharding and dtype
    of the variable it replaces (pmap's replicas included); optimizer state stays fresh."""
    import jax
    names, leaves, treedef = _named_leaves(state)
    out = []
    for name, leaf in zip(names, leaves):
      if name in self.arrays:
        value = np.asarray(self.arrays[name], leaf.dtype)
        value = np.broadcast_to(value, leaf.shape)  # pmap: one copy per device
        leaf = jax.make_array_from_callback(leaf.shape, leaf.sharding,
                                            lambda index, v=value: v[index])
      out.append(leaf)
    merged = jax.tree_util.tree_unflatten(treedef, out)
    params = merged.pop("params")
    log(self.report.table())
    if jax.process_index() == 0:
      storage.write_atomic(storage.join(workdir, REPORT_FILE), self.report.to_json() + "\n")
    return dataclasses.replace(state, params=params, model_state=merged)


def plan(config, abstract_state, task_metadata: dict, workdir: str) -> Plan | None:
  """The train loop's hook: None unless config.init_from (or a part the task names in
  metadata["init_parts"], {subtree: spec}, e.g. one tower of two) is set and the workdir
  has no checkpoint to resume (resuming always wins); else the Plan, or ConfigError."""
  requests = [(config.init_from, None)] if config.get("init_from") else []
  requests += [(spec, part) for part, spec in task_metadata.get("init_parts", {}).items()
               if spec]
  if not requests:
    return None
  if storage.isdir(storage.join(workdir, "checkpoints")) and storage.listdir(
      storage.join(workdir, "checkpoints")):
    return None
  names, leaves, _ = _named_leaves(abstract_state)
  shapes = {n: tuple(leaf.shape) for n, leaf in zip(names, leaves)}
  arrays, reports = {}, []
  for spec, part in requests:
    source = read(spec)
    loaded, report = match(shapes, task_metadata.get("encoder_path"), source,
                           bool(config.get("init_from_strict", True)), part=part)
    # The config group holding the model fields of that part ("model" for the whole run).
    model = config.get(task_metadata.get("part_models", {}).get(part, "model"), {})
    report.notes = computation_differences(source.config.get("model", {}), model)
    arrays.update(loaded)
    reports.append(report)
  return Plan(arrays, reports[0] if len(reports) == 1 else _merged(reports))


def _merged(reports: list) -> Report:
  """One report of several parts' loads."""
  return Report(" + ".join(r.source for r in reports), "; ".join(r.how for r in reports),
                *[sum((getattr(r, f) for r in reports), []) for f in
                  ("loaded", "new", "mismatched", "unused", "notes")])


# Model fields that change what the same weights compute without changing their shapes.
_SAME_SHAPE_FIELDS = ("name", "position", "layer_norm_eps", "pool", "stem")


def computation_differences(source_model: dict, run_model) -> list[str]:
  """Notes for fields where the run computes differently from the source's model."""
  out = []
  for field in _SAME_SHAPE_FIELDS:
    theirs, ours = source_model.get(field), run_model.get(field)
    if theirs is not None and ours is not None and theirs != ours:
      out.append(f"the source has model.{field}={theirs!r}, this run {ours!r}: the loaded "
                 f"weights will compute differently (--config.model.{field}={theirs} keeps "
                 "the source's function)")
  return out
