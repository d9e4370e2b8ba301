"""DINO on scikit-learn's digits: simclr_digits.py's data, encoder and budget, with a
momentum teacher, centring and sharpening, and multi-crop views: two global 8x8 crops and
four local 4x4 crops per digit (2-core CPU, < 10 minutes).
"""
import ml_collections

from configs import simclr_digits


def get_config():
  c = simclr_digits.get_config()
  c.objective = "dino"
  del c["simclr"]
  c.augment.preset = "byol"  # DINO's global views are BYOL's
  c.augment.crop_min_scale = 0.4  # global crops: area (0.4, 1), as DINO
  c.augment.local_crops = 4  # DINO: 8 (ViT) / 6 (ResNet) of 96 px beside two of 224 px
  c.augment.local_size = 4
  c.augment.local_crop_min_scale = 0.1  # local crops: area (0.1, 0.4); DINO's 0.05
  c.head.hidden_dim = 128  # DINO: 2048, then a 256 bottleneck, 65536 prototypes
  c.head.out_dim = 64
  c.head.num_layers = 3
  c.dino = ml_collections.ConfigDict()
  c.dino.num_prototypes = 256
  c.dino.student_temp = 0.1
  c.dino.teacher_temp = 0.04
  c.dino.warmup_teacher_temp = 0.04
  c.dino.warmup_teacher_temp_steps = 0
  c.dino.center_momentum = 0.9
  c.dino.base_momentum = 0.99  # DINO's 0.996 suits 100+ epochs; a short run moves faster
  return c
