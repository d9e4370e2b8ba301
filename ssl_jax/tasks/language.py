"""Language-model tasks: next-token prediction (GPT, LSTM) and masked LM (BERT)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import models
from ssl_jax.data import pipeline, text
from ssl_jax.errors import ConfigError
from ssl_jax.objectives import masked_lm, next_token
from ssl_jax.tasks import Task


def validate(config):
  m, d = config.model, config.data
  if d.seq_len > m.max_len:
    raise ConfigError(
        f"data.seq_len={d.seq_len} is longer than the model's context model.max_len={m.max_len}; "
        "lower data.seq_len or raise model.max_len.")
  if m.name != "lstm" and m.width % m.num_heads:
    raise ConfigError(f"model.width={m.width} is not divisible by model.num_heads={m.num_heads}.")
  if m.get("position", "learned") not in ("learned", "rope"):
    raise ConfigError(f"model.position must be 'learned' or 'rope', got {m.position!r}.")
  mlm_head = m.get("mlm_head", "tied")
  if mlm_head not in ("tied", "transform"):
    raise ConfigError(f"model.mlm_head must be 'tied' or 'transform', got {mlm_head!r}.")
  if mlm_head != "tied" and m.name != "bert":
    raise ConfigError(f"model.mlm_head={mlm_head!r} is a masked-LM head for model.name='bert'; "
                      f"model.name={m.name!r} predicts through the tied embedding only.")


def _text_data(config):
  """(TextData, train grain dataset, evaluation batches) of packed seq_len + 1 sequences."""
  validate(config)
  data = text.load(config.data)
  T = config.data.seq_len
  count, load_rows = text.sequence_loader(data.train_tokens, T)
  if count < config.batch_size:
    raise ConfigError(f"The training split has {count} sequences of {T} tokens, fewer than "
                      f"batch_size={config.batch_size}; use a larger corpus or smaller batch.")
  train_data = pipeline.global_batches(count, config.batch_size, load_rows, seed=config.seed)
  eval_count, eval_rows = text.sequence_loader(data.eval_tokens, T)
  eval_batch = min(config.batch_size, eval_count - eval_count % jax.device_count())
  if eval_batch < jax.device_count():
    raise ConfigError(f"The evaluation split has {eval_count} sequences of {T} tokens; too few.")
  # A fixed random sample of the whole split (the same for every run and seed): the first
  # batches in file order would measure one or two files only.
  eval_ds = pipeline.global_batches(eval_count, eval_batch, eval_rows, seed=0, repeat=False)
  eval_data = [eval_ds[i] for i in range(min(len(eval_ds), config.eval_steps))]
  return data, train_data, eval_data


def _apply(model, params, tokens_BxT, rng, train, pad_mask_BxT=None):
  rngs = {"dropout": rng} if train and rng is not None else {}
  return model.apply({"params": params}, tokens_BxT, pad_mask_BxT=pad_mask_BxT, train=train,
                     rngs=rngs)


def next_token_task(config, axis_name: str | None = None) -> Task:
  del axis_name  # per-device mean losses; the train step averages them over devices
  data, train_data, eval_data = _text_data(config)
  tok = data.tokenizer
  model = models.language_model(config.model, tok.vocab_size)
  token_bytes_V = jnp.asarray(tok.token_bytes, jnp.float32)
  apply_fn = functools.partial(_apply, model)

  def init(key):
    return model.init(key, jnp.zeros((1, config.data.seq_len), jnp.int32))["params"], {}

  def loss_fn(params, model_state, batch, rng):
    loss, metrics = next_token.loss_fn(apply_fn, token_bytes_V, params, batch, rng)
    return loss, (metrics, model_state)

  def eval_sums(params, model_state, batch):
    return next_token.batch_eval_sums(apply_fn, token_bytes_V, params, batch)

  def on_end(params, model_state, workdir):
    from ssl_jax import sample
    prompt = config.get("sample_prompt", "")
    out = sample.generate(config.model, tok, params, prompt,
                          # A prompt as long as the context is cut, not an error after training.
                          max_new_tokens=max(1, min(200, config.model.max_len
                                                    - len(tok.encode(prompt)))),
                          rng=jax.random.key(config.seed), temperature=0.8, top_k=40)
    print("\n--- sample ---\n" + prompt + out + "\n--------------", flush=True)

  return Task(init=init, loss_fn=loss_fn, eval_sums=eval_sums,
              finalize_eval=next_token.metrics_from_eval_sums, train_data=train_data,
              eval_data=eval_data, unit=("tokens", config.batch_size * config.data.seq_len),
              on_end=on_end, metadata={"tokenizer": tok.spec, "dataset": data.dataset,
                                       "dataset_fingerprint": data.fingerprint,
                                       "vocab_size": tok.vocab_size})


def masked_lm_task(config, axis_name: str | None = None) -> Task:
  """BERT: a bidirectional encoder predicts the chosen tokens (config.mlm) of each sequence."""
  del axis_name  # per-device mean losses; the train step averages them over devices
  if config.model.name != "bert":
    raise ConfigError(f"objective 'masked_lm' needs model.name='bert', got {config.model.name!r}.")
  if config.mlm.masking not in ("token", "span"):
    raise ConfigError(f"mlm.masking must be 'token' or 'span', got {config.mlm.masking!r}.")
  data, train_data, eval_data = _text_data(config)
  tok = data.tokenizer
  mask_id = tok.vocab_size  # one extra id past the tokenizer's vocabulary
  model = models.language_model(config.model, tok.vocab_size + 1)
  token_bytes_V = jnp.asarray(np.append(tok.token_bytes, 0), jnp.float32)
  T = config.data.seq_len

  def masked_eval_sums(params, batch, key, rng, train):
    tokens_BxT = batch["tokens"][:, :T]
    inputs, targets, chosen, valid = masked_lm.corrupt(key, tokens_BxT, config.mlm, mask_id,
                                                       tok.vocab_size, tok.eos_id)
    logits_BxTxV = _apply(model, params, inputs, rng, train, valid)
    return masked_lm.eval_sums(logits_BxTxV, targets, chosen, token_bytes_V)

  def init(key):
    return model.init(key, jnp.zeros((1, T), jnp.int32))["params"], {}

  def loss_fn(params, model_state, batch, rng):
    k_mask, k_drop = jax.random.split(rng)
    metrics = masked_lm.metrics_from_eval_sums(
        masked_eval_sums(params, batch, k_mask, k_drop, True))
    return metrics["loss"], (metrics, model_state)

  def eval_sums(params, model_state, batch):
    # The same masks at every evaluation, so eval curves compare across steps.
    return masked_eval_sums(params, batch, jax.random.key(0), None, False)

  return Task(init=init, loss_fn=loss_fn, eval_sums=eval_sums,
              finalize_eval=masked_lm.metrics_from_eval_sums, train_data=train_data,
              eval_data=eval_data,
              unit=("tokens", config.batch_size * T),
              metadata={"tokenizer": tok.spec, "dataset": data.dataset,
                        "dataset_fingerprint": data.fingerprint,
                        "vocab_size": tok.vocab_size, "mask_id": mask_id})
