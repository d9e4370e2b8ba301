"""The default main job: a small byte-level GPT on the interpreter's standard library.

Sized for about 5 minutes on a 2-core CPU: 2,400 steps of 8 x 256 bytes (4.9M bytes).
Validation bits per byte falls from 8 (untrained) to about 1.9; many small steps and rotary
positions learn much faster per second here than fewer, larger batches or learned positions.
"""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.objective = "next_token"
  c.seed = 0
  c.total_steps = 2400
  c.batch_size = 8
  c.grad_accum = 1
  c.log_every = 50
  c.eval_every = 600
  c.eval_steps = 64
  c.checkpoint_every = 600
  c.keep_checkpoints = 3
  c.parallel = "jit"  # or "pmap" (classic replicated data parallel)
  c.skip_nonfinite = False  # True: a NaN/Inf step is skipped instead of stopping the run
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
  c.model.remat = False
  c.model.dtype = "float32"  # compute dtype; params stay float32

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adamw"
  c.optim.lr = 3e-3
  c.optim.warmup_steps = 100
  c.optim.min_lr_ratio = 0.1
  c.optim.b1 = 0.9
  c.optim.b2 = 0.95
  c.optim.weight_decay = 0.1
  c.optim.grad_clip = 1.0

  c.mesh = ml_collections.ConfigDict()
  c.mesh.fsdp = 1
  return c
