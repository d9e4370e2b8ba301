"""Transfer source for text encoders (GPT, LSTM, BERT checkpoints): features of the
pretrained model on a package-classification task (data/stdlib_packages.py): the stdlib
one by default, or the packages under any folder (--dataset packages:DIR).

Snippets are tokenized with the checkpoint's own tokenizer to the pretraining sequence
length (padding marked -1). Features are the final hidden states averaged over the real
tokens. Baselines: the same architecture freshly initialised, and a bag of tokens.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import checkpoint_metadata, models
from ssl_jax.data import pipeline, prepare, stdlib_packages, text
from ssl_jax.evaluate import datasets
from ssl_jax.evaluate.transfer import Encoder, Labelled, Transfer


def tokenize(source, tok, seq_len: int, indices=None):
  """(tokens_NxT with -1 padding, labels_N) for a TFDS source of {text, label}: the
  examples at `indices`, or all of them."""
  indices = range(len(source)) if indices is None else indices
  tokens = np.full((len(indices), seq_len), -1, np.int32)
  labels = np.zeros(len(indices), np.int32)
  for i, index in enumerate(indices):
    example = source[int(index)]
    raw = example["text"]
    ids = tok.encode(raw.decode("utf-8") if isinstance(raw, bytes) else raw)[:seq_len]
    tokens[i, :len(ids)] = ids
    labels[i] = example["label"]
  return tokens, labels


def _mean_features(module, params, state, tokens_BxT, train: bool):
  valid_BxT = tokens_BxT >= 0
  ids = jnp.where(valid_BxT, tokens_BxT, 0)
  # Causal models never look ahead, so trailing padding needs no mask.
  pad_mask = None if getattr(module, "causal", True) else valid_BxT
  x_BxTxD = module.apply({"params": params}, ids, pad_mask_BxT=pad_mask, train=train,
                         method=module.features)
  w_BxT = valid_BxT.astype(jnp.float32)
  feats = (x_BxTxD.astype(jnp.float32) * w_BxT[..., None]).sum(1) / jnp.maximum(
      w_BxT.sum(1, keepdims=True), 1.0)
  return feats, state


def _bag_of_tokens(vocab_size, params, state, tokens_BxT, train: bool):
  del params, train
  counts = jax.nn.one_hot(jnp.where(tokens_BxT >= 0, tokens_BxT, vocab_size), vocab_size + 1)
  counts = counts.sum(1)[:, :vocab_size]
  return counts / jnp.maximum(counts.sum(1, keepdims=True), 1.0), state


def _subset(count: int, limit: int, seed: int):
  """Sorted indices of at most `limit` of `count` examples, drawn at random (the splits
  are stored sorted by class); None for all of them."""
  if not limit or limit >= count:
    return None
  return np.sort(np.random.default_rng(seed).permutation(count)[:limit])


def labelled_splits(config, options):
  """(train source, test source, class names) of the task options.dataset names."""
  spec = datasets.for_modality(options.dataset, "text")
  root = prepare.data_dir(config.data)
  if spec.kind == "packages":
    load = lambda: stdlib_packages.load_tree(root, spec.argument)  # noqa: E731
  else:
    load = lambda: stdlib_packages.load(root)  # noqa: E731
  return pipeline.process_0_first(load, "text_task")


def transfer(run, options) -> Transfer:
  config = run.config
  tok = checkpoint_metadata.tokenizer(run.metadata)  # validated, errors as ConfigError
  model_vocab = tok.vocab_size + (1 if config.objective == "masked_lm" else 0)
  module = models.language_model(config.model, model_vocab)
  train_src, test_src, names = labelled_splits(config, options)
  T = config.data.seq_len

  def labelled(source, limit):  # reads and tokenizes only the examples kept
    return Labelled(*tokenize(source, tok, T, _subset(len(source), limit, options.seed)))

  train = labelled(train_src, options.max_train_examples)
  test = labelled(test_src, options.max_test_examples)
  apply = functools.partial(_mean_features, module)

  def random_init(key):
    return Encoder(apply, module.init(key, jnp.zeros((1, T), jnp.int32))["params"], {})

  raw = Encoder(functools.partial(_bag_of_tokens, tok.vocab_size), {}, {})
  return Transfer(Encoder(apply, run.params, {}), train, test, len(names),
                  random_init=random_init, raw=raw, raw_name="bag_of_tokens")
