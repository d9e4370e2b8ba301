"""SigLIP image-text pretraining: an accelerator recipe (not run on CPU).

COCO captions prepared in data_dir (`tfds build coco_captions --file_format=array_record`;
the first caption of each image), or images with captions from a folder
(--config.data.name=image_text_folder --config.data.source=DIR, each image beside a
same-named .txt, --config.data.eval_split=test). A ViT-B/16 image tower and a 12-block text
Transformer, both trained from scratch with the sigmoid loss at batch 4096.

Modelled on SigLIP (Zhai et al. 2023), which reports its ImageNet zero-shot accuracy for
ViT-B/16 trained on billions of WebLI pairs with batch 32k; on a dataset of COCO's size
(~120k images) expect a far weaker model. Not reproduced here: WebLI, the 32k batch, the
sentencepiece vocabulary of 32k trained on WebLI text.
Evaluate with --protocol retrieval, and --protocol zeroshot --dataset tfds:NAME.
"""
import ml_collections

from configs import common


def get_config():
  c = common.loop("siglip", total_steps=20_000, batch_size=4096, log_every=100,
                  eval_every=2000, eval_steps=4, checkpoint_every=2000, keep_checkpoints=3)
  c.data = ml_collections.ConfigDict()
  c.data.name = "coco_captions"
  c.data.source = ""  # image_text_folder: the folder
  c.data.data_dir = ""
  c.data.train_split = "train"
  c.data.eval_split = "val"
  c.data.text_key = "captions/text"  # a folder's captions: "text"
  c.data.image_key = "image"
  c.data.tokenizer = "sentencepiece"
  c.data.vocab_size = 32_000
  c.data.text_len = 64
  c.data.pair_len = 1  # unused: the pair side is an image
  c.data.image_size = 224

  c.model = ml_collections.ConfigDict()  # the text tower
  c.model.name = "bert"
  c.model.num_layers = 12
  c.model.num_heads = 12
  c.model.width = 768
  c.model.mlp_ratio = 4
  c.model.dropout = 0.0
  c.model.position = "learned"
  c.model.max_len = 64
  c.model.layer_norm_eps = 1e-6
  c.model.remat = False
  c.model.dtype = "bfloat16"
  c.model.mlm_head = "tied"
  common.add_backends(c.model)

  c.pair_model = common.vit_model("base", patch_size=16, pool="mean")

  c.towers = ml_collections.ConfigDict()
  c.towers.embed_dim = 768
  c.towers.text_init_from = ""
  c.towers.pair_init_from = ""

  c.optim = common.adamw(1e-3, warmup_steps=2000, b2=0.95, weight_decay=1e-4)
  c.mesh = common.mesh()
  return c
