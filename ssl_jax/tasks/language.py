"""Language-model tasks: next-token prediction with a GPT or an LSTM."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import models
from ssl_jax.data import pipeline, text
from ssl_jax.errors import ConfigError
from ssl_jax.objectives import next_token
from ssl_jax.tasks import Task


def validate(config, num_devices: int):
  m, d = config.model, config.data
  if d.seq_len > m.max_len:
    raise ConfigError(
        f"data.seq_len={d.seq_len} is longer than the model's context model.max_len={m.max_len}; "
        "lower data.seq_len or raise model.max_len.")
  if m.name == "gpt" and m.width % m.num_heads:
    raise ConfigError(f"model.width={m.width} is not divisible by model.num_heads={m.num_heads}.")
  if m.position not in ("learned", "rope"):
    raise ConfigError(f"model.position must be 'learned' or 'rope', got {m.position!r}.")


def _apply(model, params, tokens_BxT, rng, train):
  rngs = {"dropout": rng} if train and rng is not None else {}
  return model.apply({"params": params}, tokens_BxT, train=train, rngs=rngs)


def next_token_task(config) -> Task:
  validate(config, jax.device_count())
  data = text.load(config.data)
  tok = data.tokenizer
  model = models.language_model(config.model, tok.vocab_size)
  T = config.data.seq_len
  token_bytes_V = jnp.asarray(tok.token_bytes, jnp.float32)
  apply_fn = functools.partial(_apply, model)

  def init(key):
    params = model.init(key, jnp.zeros((1, T), jnp.int32))["params"]
    return params, {}

  def loss_fn(params, model_state, batch, rng):
    loss, metrics = next_token.loss_fn(apply_fn, token_bytes_V, params, batch, rng)
    return loss, (metrics, model_state)

  def eval_sums(params, model_state, batch):
    return next_token.sums_fn(apply_fn, token_bytes_V, params, batch)

  count, load_rows = text.sequence_loader(data.train_tokens, T)
  if count < config.batch_size:
    raise ConfigError(f"The training split has {count} sequences of {T} tokens, fewer than "
                      f"batch_size={config.batch_size}; use a larger corpus or smaller batch.")
  train_data = pipeline.global_batches(count, config.batch_size, load_rows, seed=config.seed)

  eval_count, eval_rows = text.sequence_loader(data.eval_tokens, T)
  eval_batch = min(config.batch_size, eval_count - eval_count % jax.device_count())
  if eval_batch < jax.device_count():
    raise ConfigError(f"The evaluation split has {eval_count} sequences of {T} tokens; too few.")
  eval_ds = pipeline.global_batches(eval_count, eval_batch, eval_rows, seed=0, shuffle=False,
                                    repeat=False)
  eval_data = [eval_ds[i] for i in range(min(len(eval_ds), config.eval_steps))]

  def on_end(params, model_state, workdir):
    from ssl_jax import sample
    rng = jax.random.key(config.seed)
    prompt = config.get("sample_prompt", "")
    out = sample.generate(config.model, tok, params, prompt, max_new_tokens=min(200, config.model.max_len // 2), rng=rng,
                          temperature=0.8, top_k=40)
    print("\n--- sample ---\n" + prompt + out + "\n--------------", flush=True)

  return Task(init=init, loss_fn=loss_fn, eval_sums=eval_sums,
              finalize_eval=next_token.metrics_from_sums, train_data=train_data,
              eval_data=eval_data, unit=("tokens", config.batch_size * T), on_end=on_end,
              metadata={"tokenizer": tok.spec, "dataset": data.dataset,
                        "vocab_size": tok.vocab_size})
