"""--dataset SPEC: the labelled data a transfer source probes the encoder on.

  ""            what the run implies: the stdlib task for text encoders, the pretraining
                dataset's probe and eval splits for image encoders
  stdlib        text: which standard-library package a snippet comes from
  packages:DIR  text: the same task over the Python packages under DIR (its top-level
                subfolders are the classes; data/stdlib_packages.py)
  images:DIR    images: a folder with one subfolder per class (root/CLASS/*.png, or
                root/train/CLASS and root/test/CLASS)
  tfds:NAME     images: a TFDS dataset with image and label features in --data_dir
                ("digits" is built locally; others as `tfds build` left them); its
                "train" split trains the probe, "test" (else "validation") scores it

Only the form is checked here (before a checkpoint is read); whether it suits the
encoder is checked by the source (for_modality).
"""
import dataclasses
import re

from ssl_jax.errors import ConfigError

TEXT_KINDS = ("stdlib", "packages")
IMAGE_KINDS = ("images", "tfds")
FORMS = ("stdlib or packages:DIR for text encoders; images:DIR or tfds:NAME for image "
         "encoders")
_TAKES_ARGUMENT = ("packages", "images", "tfds")
_TFDS_NAME = re.compile(r"^[a-z0-9_]+(/[A-Za-z0-9_.-]+)?(:[0-9.*]+)?$")


@dataclasses.dataclass(frozen=True)
class Spec:
  kind: str = ""  # "" = the run's own data
  argument: str = ""  # DIR or NAME


def parse(spec: str) -> Spec:
  """The parsed --dataset value; ConfigError naming the accepted forms if malformed."""
  if not spec:
    return Spec()
  kind, colon, argument = spec.partition(":")
  if kind not in TEXT_KINDS + IMAGE_KINDS:
    _bad(spec, f"unknown kind {kind!r}")
  if kind in _TAKES_ARGUMENT and not argument.strip():
    _bad(spec, f"{kind}: needs a {'NAME' if kind == 'tfds' else 'DIR'} after the colon")
  if kind not in _TAKES_ARGUMENT and colon:
    _bad(spec, f"{kind} takes nothing after it")
  if kind in ("packages", "images"):
    from ssl_jax import config_check
    config_check.check_local_path(f"--dataset {kind}:DIR", argument)
  if kind == "tfds" and not _TFDS_NAME.match(argument):
    _bad(spec, f"{argument!r} is not a TFDS dataset name (name, name/config or name:version)")
  if kind == "tfds" and argument == "image_folder":
    _bad(spec, "an image folder is given as images:DIR")
  return Spec(kind, argument)


def for_modality(spec: str, modality: str) -> Spec:
  """parse(spec), and a ConfigError unless it names a dataset of `modality` (text|image)."""
  parsed = parse(spec)
  kinds = TEXT_KINDS if modality == "text" else IMAGE_KINDS
  if parsed.kind and parsed.kind not in kinds:
    raise ConfigError(
        f"--dataset {spec} is for {'image' if modality == 'text' else 'text'} encoders; this "
        f"checkpoint holds {'a text' if modality == 'text' else 'an image'} encoder. Use "
        f"{' or '.join(_forms(kinds))}.")
  return parsed


def _forms(kinds):
  return [f"{k}:{'NAME' if k == 'tfds' else 'DIR'}" if k in _TAKES_ARGUMENT else k
          for k in kinds]


def _bad(spec: str, why: str):
  raise ConfigError(f"--dataset {spec!r}: {why}. Accepted forms: {FORMS}.")
