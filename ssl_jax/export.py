"""A checkpoint as a Hugging Face folder: python -m ssl_jax.export --workdir DIR --out OUT [--step N]

OUT gets config.json, model.safetensors and the tokenizer files (language models) or
preprocessor_config.json (image encoders), loadable by transformers' AutoModel...,
AutoTokenizer and AutoImageProcessor `from_pretrained(OUT)` without custom code. The
architecture follows the model (ssl_jax/convert/__init__.py lists the mapping); a model no
architecture matches exactly is refused with exit 2 and the difference named.
config.json also records the run under "ssl_jax", so --config.init_from=OUT rebuilds it.
"""
import json
import os
import shutil
import sys
import tempfile

from absl import flags

from ssl_jax import bootstrap, convert, storage
from ssl_jax.checkpoint import load_step
from ssl_jax.errors import EXIT_CONFIG, ConfigError



def _define_flags():
  """Only when run as a command: importing this module (init_from, tests) defines no flags."""
  flags.DEFINE_string("workdir", None, "Training workdir holding checkpoints/.")
  flags.DEFINE_string("out", None, "Folder to write (new, empty, or an earlier export).")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest readable).")

USAGE = "Usage: python -m ssl_jax.export --workdir DIR --out OUT [--step N]"


def export(workdir: str, out: str, step: int | None = None, log=print) -> dict:
  """Writes the export of `workdir` into `out`; returns its config.json."""
  import ml_collections
  step, params, model_state, metadata = load_step(workdir, step)
  config = metadata["config"]
  model_cfg = ml_collections.ConfigDict(config["model"])
  module = convert.module_for_run(model_cfg)
  reason = module.unsupported(model_cfg)
  if reason:
    raise ConfigError(f"This model cannot be exported exactly: {reason}")
  variables, vocab_size = convert.bare_model(params, model_state, metadata)
  extra = {}
  if "tokenizer" in metadata:  # language models: ssl_jax's document separator is the eos id
    from ssl_jax.data import tokenizers
    extra["eos_id"] = tokenizers.from_spec(metadata["tokenizer"]).eos_id
  hf_config, tensors = module.to_hf(variables, model_cfg, vocab_size, **extra)
  hf_config[convert.RUN_KEY] = {
      "objective": config.get("objective"), "step": step, "config": config,
      "metadata": {k: metadata[k] for k in ("tokenizer", "vocab_size", "mask_id", "image_size")
                   if k in metadata}}
  _check_out(out)
  tmp = tempfile.mkdtemp(prefix=".export-", dir=_parent(out))
  try:
    convert.save(tmp, hf_config, tensors)
    if "tokenizer" in metadata:
      from ssl_jax.convert import tokenizer
      tokenizer.save(metadata["tokenizer"], tmp, extra_ids=(vocab_size or 0) - metadata["vocab_size"])
    if "image_size" in metadata:
      from ssl_jax.convert.image_processor import image_processor_config
      with open(os.path.join(tmp, "preprocessor_config.json"), "w") as f:
        json.dump(image_processor_config(int(metadata["image_size"])), f, indent=2)
    _replace(tmp, out)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  count = sum(int(t.size) for t in tensors.values())
  log(f"Exported step {step} of {workdir} to {out}: {hf_config.get('architectures', ['-'])[0]}"
      f" ({hf_config['model_type']}), {len(tensors)} tensors, {count:,} parameters.")
  for note in getattr(module, "notes", lambda cfg: [])(model_cfg):
    log(f"note: {note}")
  return hf_config


def _parent(out: str) -> str:
  parent = os.path.dirname(os.path.abspath(out))
  os.makedirs(parent, exist_ok=True)
  return parent


def _check_out(out: str):
  """OUT may be new, empty, or an earlier export (replaced whole); nothing else is touched."""
  if os.path.isfile(out):
    raise ConfigError(f"--out={out} is a file; name a folder.")
  if os.path.isdir(out) and os.listdir(out) and not os.path.exists(
      os.path.join(out, convert.CONFIG_FILE)):
    raise ConfigError(f"--out={out} is a non-empty folder that is not an earlier export; "
                      "name a new or empty folder.")


def _replace(tmp: str, out: str):
  """Moves the finished folder into place, so OUT never holds half an export."""
  old = None
  if os.path.isdir(out):
    old = out + ".old-export"
    shutil.rmtree(old, ignore_errors=True)
    os.replace(out, old)
  os.replace(tmp, out)
  if old:
    shutil.rmtree(old, ignore_errors=True)


def main(argv):
  workdir_flag, out_flag, step_flag = flags.FLAGS.workdir, flags.FLAGS.out, flags.FLAGS.step
  if len(argv) > 1:
    print(f"error: unexpected arguments {argv[1:]}\n{USAGE}", file=sys.stderr)
    return EXIT_CONFIG
  if not workdir_flag or not out_flag:
    print(f"error: --workdir and --out are required.\n{USAGE}", file=sys.stderr)
    return EXIT_CONFIG
  if step_flag is not None and step_flag < 0:
    print(f"error: --step must be a checkpoint step (>= 0); got {step_flag}.\n{USAGE}",
          file=sys.stderr)
    return EXIT_CONFIG
  try:
    workdir = storage.resolve("--workdir", workdir_flag)
    if storage.is_url(out_flag):
      raise ConfigError(f"--out={out_flag}: export writes a local folder; copy it to object "
                        "storage afterwards.")
    export(workdir, os.path.abspath(os.path.expanduser(out_flag)), step_flag)
  except Exception as e:
    return bootstrap.exit_code(e)
  return 0


if __name__ == "__main__":
  _define_flags()
  bootstrap.start("ssl_jax.export", main, USAGE)
