"""SigLIP on the standard library's (docstring, code) pairs: which function does a
docstring describe? Two-tower contrastive pretraining on 2 CPU cores in under 10 minutes.

The text tower has the shape of configs/bert_tiny.py (byte tokens, 4 blocks of width 128),
so `--config.towers.text_init_from=BERT_WORKDIR` starts it from that run's encoder. Code
goes through the same Transformer (pair_model.name="shared") with its own projection.
Evaluate with `python -m ssl_jax.evaluate --workdir DIR --protocol retrieval`.
"""
import ml_collections

from configs import common, gpt_tiny


def base(objective: str):
  """The code-search run both two-tower losses share (configs/clip_code.py)."""
  c = common.loop(objective, total_steps=600, batch_size=32, log_every=50, eval_every=200,
                  eval_steps=8, checkpoint_every=200, keep_checkpoints=2)

  c.data = ml_collections.ConfigDict()
  c.data.name = "code_pairs"  # or "image_text_folder", or a TFDS captioning dataset
  c.data.source = "stdlib"  # "stdlib" or a glob of Python files
  c.data.data_dir = ""  # "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.data.train_split = "train"
  c.data.eval_split = "validation"
  c.data.tokenizer = "bytes"  # as configs/bert_tiny.py, so its encoder can start the tower
  c.data.vocab_size = 0
  c.data.text_len = 64  # bytes of the docstring summary (three in four are shorter)
  c.data.pair_len = 160  # bytes of the code: its signature and first lines

  c.model = gpt_tiny.get_config().model  # the text tower: BERT blocks of bert_tiny's shape
  c.model.name = "bert"
  c.model.mlm_head = "tied"
  # Token embeddings start at std 0.5, not GPT-2's 0.02: from 0.02 the towers map every
  # input to the same point within the first 20 steps (tasks/two_tower.py).
  c.model.embed_init_std = 0.5
  c.pair_model = ml_collections.ConfigDict()
  c.pair_model.name = "shared"  # or "bert"/"gpt" with the model fields: a tower of its own

  c.towers = ml_collections.ConfigDict()
  c.towers.embed_dim = 128
  # Start a tower from another run's encoder (a workdir, DIR:STEP, or a Hugging Face
  # folder); a language model's tokenizer comes with it.
  c.towers.text_init_from = ""
  c.towers.pair_init_from = ""

  if objective == "siglip":
    c.siglip = ml_collections.ConfigDict()
    # The bias starts near -log(batch size), where 31 negatives weigh as much as the one
    # positive; the paper's -10 is meant for batches of thousands.
    c.siglip.init_bias = -4.0

  c.optim = common.adamw(3e-4, warmup_steps=50, weight_decay=0.1)
  c.mesh = common.mesh()
  return c


def get_config():
  return base("siglip")
