"""ssl_jax: self-supervised pretraining of foundation models in JAX/Flax."""

__version__ = "0.1.0"


def enable_compilation_cache():
  """Turns on XLA's persistent compilation cache: $SSL_JAX_COMPILATION_CACHE, else
  ~/.cache/ssl_jax/jax; an empty value disables it. Reruns and resumes skip compiling."""
  import os
  import jax
  cache = os.environ.get("SSL_JAX_COMPILATION_CACHE", os.path.expanduser("~/.cache/ssl_jax/jax"))
  if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
