"""CLIP's softmax loss on the standard library's (docstring, code) pairs: the same towers,
data and schedule as configs/siglip_code.py, so the two losses compare directly."""
from configs import siglip_code


def get_config():
  return siglip_code.base("clip")
