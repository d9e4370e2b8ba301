"""preprocessor_config.json of an exported image encoder: the input ssl_jax's loader makes.

ssl_jax's image loader (data/images.py to_rgb) resizes the shorter side to data.image_size
with PIL's bicubic filter and crops the centre square; the models then see
model_input(images / 255) = images / 255 * 2 - 1. CLIPImageProcessor does the same steps
(shortest_edge resize, centre crop, rescale by 1/255, normalize with mean 0.5 and std 0.5).
At the native size nothing is resized and the arrays agree to float rounding. One known
difference: transformers truncates the long side where ssl_jax rounds it (21x23 -> 16x17
there, 16x18 here), which can shift the crop by a pixel.
"""


def image_processor_config(image_size: int) -> dict:
  """What AutoImageProcessor.from_pretrained(folder) reads."""
  return {
      "image_processor_type": "CLIPImageProcessor",
      "do_convert_rgb": True,
      "do_resize": True, "size": {"shortest_edge": image_size},
      "resample": 3,  # PIL.Image.BICUBIC, as data/images.py
      "do_center_crop": True, "crop_size": {"height": image_size, "width": image_size},
      "do_rescale": True, "rescale_factor": 1 / 255,
      "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
  }
