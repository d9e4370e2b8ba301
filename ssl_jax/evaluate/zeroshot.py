"""Zero-shot classification with an image-text run: --protocol zeroshot --dataset SPEC.

Each class name is put into a prompt (--prompt, "a photo of a {}." by default) and embedded
by the text tower; each test image goes to the class whose prompt embeds closest. No
labelled example is used for training. Reports accuracy, the chance level (1 / classes),
and the same towers at random init ("random_init_accuracy").
"""
import jax
import numpy as np

from ssl_jax.data import images
from ssl_jax.errors import ConfigError, DataError
from ssl_jax.evaluate import image_transfer
from ssl_jax.evaluate.retrieval import embedder, towers
from ssl_jax.evaluate.uncertainty import Estimate


def class_names(source, num_classes: int) -> list[str]:
  features = getattr(getattr(source, "dataset_info", None), "features", None)
  label = features["label"] if features is not None and "label" in features else None
  names = list(getattr(label, "names", None) or [])
  if len(names) != num_classes:
    raise DataError(f"The dataset does not name its {num_classes} classes; zero-shot "
                    "classification needs class names to put into the prompts.")
  return [name.replace("_", " ") for name in names]


def prompt_tokens(tok, prompts: list[str], length: int) -> np.ndarray:
  """int32 [C, length] token ids, -1 as padding (as data/pairs.py pads)."""
  out = np.full((len(prompts), length), -1, np.int32)
  for i, prompt in enumerate(prompts):
    ids = np.asarray(tok.encode(prompt))[:length]
    out[i, :len(ids)] = ids
  return out


def run(run, options) -> dict:
  if not options.dataset:
    raise ConfigError("zeroshot needs labelled images: --dataset images:DIR (one subfolder "
                      "per class, named after it) or --dataset tfds:NAME.")
  model, tok = towers(run)
  config = run.config
  if config.pair_model.name not in ("vit", "resnet"):
    raise ConfigError(f"{run.workdir} pairs text with {config.pair_model.name!r} text, not "
                      "images; zero-shot classification needs an image tower.")
  _, test, num_classes = image_transfer.labelled_splits(config, options)
  names = class_names(test, num_classes)
  prompts = prompt_tokens(tok, [options.prompt.replace("{}", n) for n in names],
                          config.data.text_len)
  images_N, labels_N = images.load_arrays(test, config.data.image_size,
                                          options.max_test_examples)
  embed_text, embed_image = embedder(model, "text"), embedder(model, "pair")
  runs = {"": {"params": run.params, **run.model_state}}
  if options.baselines:
    from ssl_jax.tasks.two_tower import dummy_inputs
    runs["random_init_"] = model.init(jax.random.key(options.seed), *dummy_inputs(config),
                                      train=False)
  metrics = {"chance": 1.0 / num_classes, "classes": float(num_classes),
             "examples": float(len(labels_N))}
  for name, variables in runs.items():
    classes_CxE = np.asarray(embed_text(variables, prompts))
    correct_N = []
    for start in range(0, len(labels_N), options.batch_size):
      z_BxE = np.asarray(embed_image(variables, images_N[start:start + options.batch_size]))
      correct_N.append(np.argmax(z_BxE @ classes_CxE.T, -1)
                       == labels_N[start:start + options.batch_size])
    metrics[f"{name}accuracy"] = Estimate(np.concatenate(correct_N))
  return metrics
