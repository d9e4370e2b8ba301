"""The default main job: a small byte-level GPT on the interpreter's standard library.

Sized for about 5 minutes on a 2-core CPU: 2,400 steps of 8 x 256 bytes (4.9M bytes).
Validation bits per byte falls from 8 (untrained) to about 1.9; many small steps and rotary
positions learn much faster per second here than fewer, larger batches or learned positions.
"""
import ml_collections

from configs import common


def get_config():
  c = common.loop("next_token", total_steps=2400, batch_size=8, log_every=50, eval_every=600,
                  eval_steps=64, checkpoint_every=600, keep_checkpoints=3)
  c.sample_prompt = "def "

  c.data = ml_collections.ConfigDict()
  c.data.name = "local_text"  # or a TFDS text dataset prepared as array_record in data_dir
  c.data.source = "stdlib"  # "stdlib" or a glob of text files
  c.data.data_dir = ""  # "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.data.text_key = "text"
  c.data.train_split = "train"
  c.data.eval_split = "validation"
  c.data.tokenizer = "bytes"  # bytes | sentencepiece | words
  c.data.vocab_size = 0  # for the trained tokenizers
  c.data.seq_len = 256

  c.model = ml_collections.ConfigDict()
  c.model.name = "gpt"
  c.model.num_layers = 4
  c.model.num_heads = 4
  c.model.width = 128
  c.model.mlp_ratio = 4
  c.model.dropout = 0.0
  c.model.position = "rope"  # or "learned"
  c.model.max_len = 256
  c.model.layer_norm_eps = 1e-6  # every LayerNorm; flax default (HF GPT-2, GPT-NeoX: 1e-5)
  c.model.remat = False
  c.model.dtype = "float32"  # compute dtype; params stay float32
  common.add_backends(c.model)

  c.optim = common.adamw(3e-3, warmup_steps=100)
  c.mesh = common.mesh()
  return c
