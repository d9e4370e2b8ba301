"""Data: TFDS builders (array_record), tokenizers, grain pipelines, augmentations."""
