"""Text generation from a language-model checkpoint, with a key/value cache.

python -m ssl_jax.sample --workdir DIR --prompt TEXT --max_new_tokens N \
    [--temperature T] [--top_k K] [--seed S]
"""
import functools
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssl_jax import bootstrap, models
from ssl_jax.errors import EXIT_CONFIG, ConfigError


def _pick(logits_BxV, rng, temperature: float, top_k: int):
  if temperature <= 0:
    return jnp.argmax(logits_BxV, -1)
  logits_BxV = logits_BxV / temperature
  if top_k > 0:
    kth_B1 = jax.lax.top_k(logits_BxV, top_k)[0][:, -1:]
    logits_BxV = jnp.where(logits_BxV < kth_B1, -jnp.inf, logits_BxV)
  return jax.random.categorical(rng, logits_BxV, -1)


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6))
def _generate(model, params, prompt_1xP, rng, max_new_tokens, temperature, top_k):
  P = prompt_1xP.shape[1]
  cache = jax.tree.map(jnp.zeros_like, jax.eval_shape(
      model.init, jax.random.key(0), jnp.zeros((1, model.max_len), jnp.int32))["cache"])
  logits_1xPxV, mutated = model.apply({"params": params, "cache": cache}, prompt_1xP,
                                      jnp.arange(P), mutable=["cache"])
  first = _pick(logits_1xPxV[:, -1], jax.random.fold_in(rng, 0), temperature, top_k)

  def step(carry, i):
    cache, token_1 = carry
    logits_1x1xV, mutated = model.apply({"params": params, "cache": cache}, token_1[:, None],
                                        (P + i)[None], mutable=["cache"])
    nxt = _pick(logits_1x1xV[:, 0], jax.random.fold_in(rng, i + 1), temperature, top_k)
    return (mutated["cache"], nxt), token_1[0]

  _, tokens_N = jax.lax.scan(step, (mutated["cache"], first), jnp.arange(max_new_tokens))
  return tokens_N


def generate(model_cfg, tokenizer, params, prompt: str, max_new_tokens: int, rng,
             temperature: float = 1.0, top_k: int = 0) -> str:
  """The continuation of `prompt` (a string), sampled from the model; cost linear in length."""
  if max_new_tokens < 1:
    raise ConfigError("max_new_tokens must be at least 1.")
  model = models.language_model(model_cfg, tokenizer.vocab_size, decode=True)
  ids = [tokenizer.eos_id] + list(tokenizer.encode(prompt))  # start as a new document
  room = model_cfg.max_len - max_new_tokens
  if room < 1:
    raise ConfigError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the "
                      f"model's context of {model_cfg.max_len} tokens.")
  ids = ids[-room:]
  top_k = 0 if top_k >= tokenizer.vocab_size else top_k  # k of all tokens is all of them
  tokens_N = _generate(model, params, jnp.asarray([ids], jnp.int32), rng, max_new_tokens,
                       float(temperature), int(top_k))
  tokens = np.asarray(tokens_N)
  stop = np.flatnonzero(tokens == tokenizer.eos_id)
  return tokenizer.decode(tokens[:stop[0]] if len(stop) else tokens)


def load_for_sampling(workdir: str):
  """(model config, tokenizer, params) from the newest readable checkpoint in workdir."""
  from ssl_jax import checkpoint_metadata
  from ssl_jax.checkpoint import load_latest
  _, state, metadata = load_latest(workdir)  # skips unreadable ones; ConfigError if none
  if "tokenizer" not in metadata or "config" not in metadata:
    raise ConfigError(f"The checkpoint in {workdir} is not a language model's.")
  checkpoint_metadata.check(metadata)  # model sizes and tokenizer, before they are used
  model_cfg = ml_collections.ConfigDict(metadata["config"]["model"])
  return model_cfg, checkpoint_metadata.tokenizer(metadata), state["params"]


USAGE = ("Usage: python -m ssl_jax.sample --workdir DIR --prompt TEXT --max_new_tokens N "
         "[--temperature T] [--top_k K] [--seed S]")


def usage_error(f, argv) -> str | None:
  """What is wrong with the command line, checked before the checkpoint is read."""
  if len(argv) > 1:
    return f"unexpected arguments {argv[1:]}"
  if not f.workdir:
    return "--workdir is required."
  from ssl_jax import storage
  try:
    storage.resolve("--workdir", f.workdir)
  except ConfigError as e:
    return str(e)
  if f.max_new_tokens < 1:
    return f"--max_new_tokens must be at least 1; got {f.max_new_tokens}."
  if f.temperature < 0:
    return f"--temperature must be 0 (greedy) or positive; got {f.temperature}."
  if f.top_k < 0:
    return f"--top_k must be 0 (all tokens) or positive; got {f.top_k}."
  if not -2 ** 63 <= f.seed < 2 ** 63:
    return f"--seed must be a 64-bit integer; got {f.seed}."
  return None


def main(argv):
  from absl import flags
  f = flags.FLAGS
  problem = usage_error(f, argv)
  if problem:
    print(f"error: {problem}\n{USAGE}", file=sys.stderr)
    return EXIT_CONFIG
  try:
    model_cfg, tok, params = load_for_sampling(f.workdir)
    text = generate(model_cfg, tok, params, f.prompt, f.max_new_tokens, jax.random.key(f.seed),
                    f.temperature, f.top_k)
  except Exception as e:
    return bootstrap.exit_code(e, batch="the model with its key/value cache",
                               fit_advice="sample on a device with more memory")
  print(f.prompt + text)
  return 0


if __name__ == "__main__":
  from absl import flags
  flags.DEFINE_string("workdir", None, "Training workdir holding checkpoints/.")
  flags.DEFINE_string("prompt", "", "Text to continue.")
  flags.DEFINE_integer("max_new_tokens", 200, "Tokens to generate.")
  flags.DEFINE_float("temperature", 0.8, "Softmax temperature; 0 is greedy.")
  flags.DEFINE_integer("top_k", 40, "Sample among the k most likely tokens; 0 for all.")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  bootstrap.start("ssl_jax.sample", main, USAGE)
