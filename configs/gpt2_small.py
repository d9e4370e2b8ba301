"""GPT-2 small (124M parameters: 12 layers, 12 heads, width 768, context 1024), for a GPU.

bf16 compute with float32 parameters and optimizer state; on a GPU attention runs through
cuDNN's fused kernel. The tokenizer is a 50257-piece SentencePiece BPE (GPT-2's vocabulary
size, so the parameter count matches GPT-2 small), trained on the corpus at first use.
The data default is the local standard-library text so the config runs anywhere; for a real
run point data.name at a prepared TFDS corpus (data.data_dir). Throughput and MFU on one
H200: benchmarks/device_check.sh and benchmarks/RESULTS.md.
"""
import ml_collections

from configs import common


def get_config():
  # batch_size: sequences of 1024 tokens, 32k tokens per step.
  c = common.loop("next_token", total_steps=20000, batch_size=32, log_every=50,
                  eval_every=1000, eval_steps=20, checkpoint_every=1000, keep_checkpoints=3)
  c.sample_prompt = "def "

  c.data = ml_collections.ConfigDict()
  c.data.name = "local_text"  # or a TFDS text dataset prepared as array_record in data_dir
  c.data.source = "stdlib"  # "stdlib" or a glob of text files
  c.data.data_dir = ""  # "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.data.text_key = "text"
  c.data.train_split = "train"
  c.data.eval_split = "validation"
  c.data.tokenizer = "sentencepiece"  # bytes | sentencepiece | words
  c.data.vocab_size = 50257
  c.data.seq_len = 1024

  c.model = ml_collections.ConfigDict()
  c.model.name = "gpt"
  c.model.num_layers = 12
  c.model.num_heads = 12
  c.model.width = 768
  c.model.mlp_ratio = 4
  c.model.dropout = 0.0
  c.model.position = "learned"  # or "rope"
  c.model.max_len = 1024
  c.model.layer_norm_eps = 1e-6  # every LayerNorm; flax default (HF GPT-2, GPT-NeoX: 1e-5)
  c.model.remat = False  # activations fit an H200 at this batch; True trades compute for memory
  c.model.dtype = "bfloat16"  # compute dtype; params stay float32
  common.add_backends(c.model)

  c.optim = common.adamw(6e-4, warmup_steps=700)
  c.mesh = common.mesh()
  return c
