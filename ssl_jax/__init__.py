"""ssl_jax: self-supervised pretraining of foundation models in JAX/Flax."""

__version__ = "0.1.0"

