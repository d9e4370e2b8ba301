"""Two-tower contrastive pretraining on pairs: CLIP (softmax) and SigLIP (sigmoid).

A batch holds B pairs: "text" tokens (a docstring, a caption) and "pair" (the code's
tokens, or an image). Each tower embeds its side; pair i's two embeddings are pulled
together and every other pair of the global batch is a negative.

params       {"text": {"encoder"}, "pair": {"encoder"} unless shared, "text_proj",
             "pair_proj", "log_scale", "bias" (SigLIP)}        (models/two_tower.py)
model_state  {} (a ResNet image tower: its batch statistics)

Config: data (data/pairs.py), model (the text tower: a Transformer), pair_model (name
"shared", a Transformer of its own, "vit" or "resnet"), towers.embed_dim, and
towers.text_init_from / towers.pair_init_from: a workdir or Hugging Face folder whose
encoder starts that tower (a language model's tokenizer comes with it).
"""
import jax
import jax.numpy as jnp

from ssl_jax import models
from ssl_jax.errors import ConfigError
from ssl_jax.models import encoders
from ssl_jax.models.inputs import model_input
from ssl_jax.models.two_tower import Tower, TwoTower
from ssl_jax.objectives import clip, siglip
from ssl_jax.tasks import Task

TEXT_MODELS = ("gpt", "bert")
IMAGE_MODELS = ("vit", "resnet")
SHARED = "shared"
CODE_PAIRS = "code_pairs"  # data/pairs.py: every other data.name pairs text with images
# Where each tower's encoder sits, and which config group describes it (init_from.plan).
PARTS = {"text/encoder": "model", "pair/encoder": "pair_model"}
LOSSES = {"clip": clip, "siglip": siglip}  # config.objective -> its loss module


def validate(config):
  m, p, d = config.model, config.pair_model, config.data
  if m.name not in TEXT_MODELS:
    raise ConfigError(f"The text tower (model.name) must be one of {', '.join(TEXT_MODELS)}; "
                      f"got {m.name!r}.")
  if p.name not in (SHARED, *TEXT_MODELS, *IMAGE_MODELS):
    raise ConfigError(f"pair_model.name must be {SHARED!r} (the text tower's weights), "
                      f"{' or '.join(TEXT_MODELS)} (a text tower of its own) or "
                      f"{' or '.join(IMAGE_MODELS)} (an image tower); got {p.name!r}.")
  image = p.name in IMAGE_MODELS
  if image == (d.name == CODE_PAIRS):
    raise ConfigError(
        f"data.name={d.name!r} pairs text with {'code' if d.name == CODE_PAIRS else 'images'}, "
        f"but pair_model.name={p.name!r} is {'an image' if image else 'a text'} tower.")
  if config.batch_size < 2:
    raise ConfigError("batch_size must be at least 2: contrastive losses need negatives.")
  if d.text_len > m.max_len:
    raise ConfigError(f"data.text_len={d.text_len} is longer than the text tower's context "
                      f"model.max_len={m.max_len}.")
  pair_max = m.max_len if p.name == SHARED else p.get("max_len", 0)
  if not image and d.pair_len > pair_max:
    raise ConfigError(f"data.pair_len={d.pair_len} is longer than the pair tower's context "
                      f"({'model' if p.name == SHARED else 'pair_model'}.max_len={pair_max}).")
  if m.width % m.num_heads:
    raise ConfigError(f"model.width={m.width} is not divisible by model.num_heads="
                      f"{m.num_heads}.")
  if image:
    encoders.check_encoder(p)
    encoders.check_image_size(p, d.image_size)
  elif p.name != SHARED and p.width % p.num_heads:
    raise ConfigError(f"pair_model.width={p.width} is not divisible by pair_model.num_heads="
                      f"{p.num_heads}.")


def build_model(config, text_vocab: int, pair_vocab: int, axis_name=None) -> TwoTower:
  """The two towers of `config` with the given embedding rows (a tokenizer's vocabulary, or
  the rows of the weights a tower starts from)."""
  p = config.pair_model
  text = Tower(models.language_model(config.model, text_vocab))
  if p.name == SHARED:
    pair = None
  elif p.name in IMAGE_MODELS:
    pair = Tower(encoders.image_encoder(p, bn_axis_name=axis_name), text=False)
  else:
    pair = Tower(models.language_model(p, pair_vocab))
  bias = None
  if config.objective == "siglip":  # the paper's -10 suits batches of thousands
    bias = config.get("siglip", {}).get("init_bias", siglip.INIT_BIAS)
  return TwoTower(text, pair, config.towers.embed_dim,
                  init_log_scale=LOSSES[config.objective].INIT_LOG_SCALE, init_bias=bias)


def dummy_inputs(config):
  """Inputs of one pair, for init."""
  d = config.data
  text = jnp.zeros((1, d.text_len), jnp.int32)
  if config.pair_model.name in IMAGE_MODELS:
    return text, jnp.zeros((1, d.image_size, d.image_size, 3), jnp.float32)
  return text, jnp.zeros((1, d.pair_len), jnp.int32)


def pair_input(batch_pair):
  """Code tokens as they are; uint8 images to the models' [-1, 1]."""
  if batch_pair.dtype == jnp.uint8:
    return model_input(batch_pair.astype(jnp.float32) / 255.0)
  return batch_pair


def embed_loss(objective: str, x_BxE, y_BxE, log_scale, bias, axis_name=None):
  if objective == "clip":
    return clip.loss(x_BxE, y_BxE, log_scale, axis_name=axis_name)
  return siglip.loss(x_BxE, y_BxE, log_scale, bias, axis_name=axis_name)


def _start_vocab(spec: str):
  """(tokenizer spec or None, embedding rows or None) of the weights at init_from spec."""
  if not spec:
    return None, None
  from ssl_jax import init_from
  source = init_from.read(spec)
  if source.encoder_path is not None:  # an image encoder: no tokenizer
    return None, None
  rows = source.variables["params"].get("embed", {}).get("embedding")
  return source.metadata.get("tokenizer"), None if rows is None else int(rows.shape[0])


def two_tower_task(config, axis_name: str | None = None) -> Task:
  validate(config)
  from ssl_jax.data import pairs, pipeline
  t = config.towers
  text_spec, text_rows = _start_vocab(t.text_init_from)
  pair_spec, pair_rows = _start_vocab(t.pair_init_from)
  if text_spec and pair_spec and text_spec != pair_spec:
    raise ConfigError("towers.text_init_from and towers.pair_init_from use different "
                      "tokenizers; both sides are tokenized alike, so start one tower only.")
  data = pairs.load(config.data, tokenizer_spec=text_spec or pair_spec)
  vocab = data.tokenizer.vocab_size
  text_vocab, pair_vocab = text_rows or vocab, pair_rows or vocab
  model = build_model(config, text_vocab, pair_vocab, axis_name)

  count, load_rows = data.loader(config.data.train_split)
  if count < config.batch_size:
    raise ConfigError(f"The {config.data.train_split!r} split of {data.dataset} has {count} "
                      f"pairs, fewer than batch_size={config.batch_size}.")
  train_data = pipeline.global_batches(count, config.batch_size, load_rows, seed=config.seed)
  eval_count, eval_rows = data.loader(config.data.eval_split)
  n = jax.device_count()
  eval_batch = min(config.batch_size, eval_count - eval_count % n)
  if eval_batch < max(n, 2):
    raise ConfigError(f"The {config.data.eval_split!r} split of {data.dataset} has "
                      f"{eval_count} pairs; too few for {n} devices.")
  eval_ds = pipeline.global_batches(eval_count, eval_batch, eval_rows, seed=0, repeat=False)
  eval_data = [eval_ds[i] for i in range(min(len(eval_ds), config.eval_steps))]

  def forward(params, model_state, batch, rng, train):
    variables = {"params": params, **model_state}
    rngs = {"dropout": rng} if train and rng is not None else {}
    inputs = (batch["text"], pair_input(batch["pair"]))
    if train and model_state:
      out, model_state = model.apply(variables, *inputs, train=True, rngs=rngs,
                                     mutable=list(model_state))
    else:
      out = model.apply(variables, *inputs, train=train, rngs=rngs)
    return embed_loss(config.objective, *out, axis_name=axis_name), model_state

  def init(key):
    variables = dict(model.init(key, *dummy_inputs(config), train=False))
    return variables.pop("params"), variables

  def loss_fn(params, model_state, batch, rng):
    (loss, metrics), model_state = forward(params, model_state, batch, rng, True)
    return loss, (metrics, model_state)

  def eval_sums(params, model_state, batch):
    # In-batch metrics of the held-out pairs; --protocol retrieval ranks the whole split.
    (_, metrics), _ = forward(params, model_state, batch, None, False)
    rows = jnp.float32(batch["text"].shape[0])
    return {**{k: v * rows for k, v in metrics.items()}, "count": rows}

  def finalize_eval(sums):
    return {k: v / sums["count"] for k, v in sums.items() if k != "count"}

  unit = ("pairs", config.batch_size)
  return Task(init=init, loss_fn=loss_fn, eval_sums=eval_sums, finalize_eval=finalize_eval,
              train_data=train_data, eval_data=eval_data, unit=unit,
              metadata={"tokenizer": data.tokenizer.spec, "vocab_size": vocab,
                        "text_vocab_size": text_vocab, "pair_vocab_size": pair_vocab,
                        "sides": list(data.sides), "dataset": data.dataset,
                        "dataset_fingerprint": data.fingerprint,
                        "init_parts": {"text/encoder": t.text_init_from,
                                       "pair/encoder": t.pair_init_from},
                        "part_models": PARTS})


clip_task = siglip_task = two_tower_task  # config.objective picks the loss
