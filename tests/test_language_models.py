"""GPT and LSTM language models: causality, initial loss, key/value-cache decoding, and
the CPU product behind the transformer's dense layers."""
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from ssl_jax.models import cpu_matmul
from ssl_jax.models.gpt import GPT
from ssl_jax.models.lstm import LSTMLanguageModel
from ssl_jax.objectives import next_token

V, T = 61, 16


def _models(decode=False):
  return {
      "gpt_learned": GPT(vocab_size=V, max_len=T, num_layers=2, num_heads=2, width=32,
                         decode=decode),
      "gpt_rope": GPT(vocab_size=V, max_len=T, num_layers=2, num_heads=2, width=32,
                      position="rope", decode=decode),
      "lstm": LSTMLanguageModel(vocab_size=V, max_len=T, num_layers=2, width=32, decode=decode),
  }


class CausalityTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters("gpt_learned", "gpt_rope", "lstm")
  def test_future_tokens_never_change_past_logits(self, name):
    model = _models()[name]
    tokens = jax.random.randint(jax.random.key(0), (2, T), 0, V)
    params = model.init(jax.random.key(1), tokens)["params"]
    apply = self.variant(lambda p, x: model.apply({"params": p}, x))
    logits = apply(params, tokens)
    chex.assert_shape(logits, (2, T, V))
    cut = 7
    changed = tokens.at[:, cut:].set((tokens[:, cut:] + 1) % V)
    logits2 = apply(params, changed)
    chex.assert_trees_all_close(logits[:, :cut], logits2[:, :cut], atol=1e-5)
    # ... and the model does look at its inputs: later positions do change.
    assert not np.allclose(logits[:, cut:], logits2[:, cut:], atol=1e-4)


@pytest.mark.parametrize("name", ["gpt_learned", "gpt_rope", "lstm"])
def test_untrained_loss_is_about_log_vocab(name):
  model = _models()[name]
  tokens = jax.random.randint(jax.random.key(0), (4, T + 1), 0, V)
  params = model.init(jax.random.key(1), tokens[:, :-1])["params"]
  apply = lambda p, x, rng, train: model.apply({"params": p}, x)
  loss, metrics = next_token.loss_fn(apply, jnp.ones(V), params, {"tokens": tokens}, None)
  assert abs(float(loss) - np.log(V)) < 0.1
  assert 0.0 <= float(metrics["accuracy"]) <= 1.0
  np.testing.assert_allclose(metrics["bits_per_byte"], loss / np.log(2), rtol=1e-5)


@pytest.mark.parametrize("name", ["gpt_learned", "gpt_rope", "lstm"])
def test_cached_decoding_matches_full_forward(name):
  full, dec = _models()[name], _models(decode=True)[name]
  tokens = jax.random.randint(jax.random.key(0), (1, T), 0, V)
  params = full.init(jax.random.key(1), tokens)["params"]
  want = full.apply({"params": params}, tokens)
  cache = dec.init(jax.random.key(1), jnp.zeros((1, T), jnp.int32))["cache"]
  cache = jax.tree.map(jnp.zeros_like, cache)
  # Prefill 5 tokens, then feed one token at a time.
  got, mutated = dec.apply({"params": params, "cache": cache}, tokens[:, :5], jnp.arange(5),
                           mutable=["cache"])
  pieces = [got]
  cache = mutated["cache"]
  for t in range(5, T):
    got, mutated = dec.apply({"params": params, "cache": cache}, tokens[:, t:t + 1],
                             jnp.array([t]), mutable=["cache"])
    cache = mutated["cache"]
    pieces.append(got)
  chex.assert_trees_all_close(jnp.concatenate(pieces, 1), want, atol=1e-4)


def test_bits_per_byte_counts_bytes_of_targets():
  logits = jnp.zeros((1, 2, 4))  # uniform: nll = ln 4 per token
  sums = next_token.eval_sums(logits, jnp.array([[1, 2]]), jnp.array([0.0, 1.0, 3.0, 0.0]))
  m = next_token.metrics_from_eval_sums(sums)
  np.testing.assert_allclose(m["bits_per_byte"], 2 * np.log(4) / np.log(2) / 4, rtol=1e-6)
  np.testing.assert_allclose(m["loss"], np.log(4), rtol=1e-6)


def test_remat_and_bfloat16_keep_the_function():
  tokens = jax.random.randint(jax.random.key(0), (2, T), 0, V)
  base = GPT(vocab_size=V, max_len=T, num_layers=2, num_heads=2, width=32)
  params = base.init(jax.random.key(1), tokens)["params"]

  def loss(model, p):
    return model.apply({"params": p}, tokens).mean()

  remat = GPT(vocab_size=V, max_len=T, num_layers=2, num_heads=2, width=32, remat=True)
  g_base, g_remat = jax.grad(lambda p: loss(base, p))(params), jax.grad(lambda p: loss(remat, p))(params)
  chex.assert_trees_all_close(g_base, g_remat, atol=1e-6)
  bf16 = GPT(vocab_size=V, max_len=T, num_layers=2, num_heads=2, width=32, dtype=jnp.bfloat16)
  assert jax.tree.leaves(bf16.init(jax.random.key(1), tokens))[0].dtype == jnp.float32
  np.testing.assert_allclose(bf16.apply({"params": params}, tokens),
                             base.apply({"params": params}, tokens), atol=0.1)


@pytest.mark.parametrize("layer, in_shape", [
    ("narrowing", (3, 5, 24)), ("widening", (3, 5, 24)), ("qkv", (3, 5, 24)),
    ("heads_in", (3, 5, 2, 4))])
def test_cpu_matmul_matches_xla_dense_in_value_and_gradients(layer, in_shape):
  """ssl_jax/models/cpu_matmul.py's hand-written backward pass is nn.Dense's."""
  dot = cpu_matmul.dot_general
  make = {"narrowing": lambda **kw: nn.Dense(8, **kw), "widening": lambda **kw: nn.Dense(40, **kw),
          "qkv": lambda **kw: nn.DenseGeneral((3, 2, 4), **kw),
          "heads_in": lambda **kw: nn.DenseGeneral(6, axis=(-2, -1), **kw)}[layer]
  plain, custom = make(), make(dot_general=dot)
  x = jax.random.normal(jax.random.key(0), in_shape)
  params = plain.init(jax.random.key(2), x)
  g = jax.random.normal(jax.random.key(1), plain.apply(params, x).shape)

  def value_and_grads(module):
    loss = lambda p, x: jnp.sum(module.apply(p, x) * g)
    return loss(params, x), jax.grad(loss, argnums=(0, 1))(params, x)

  (v0, grads0), (v1, grads1) = value_and_grads(plain), value_and_grads(custom)
  np.testing.assert_allclose(v1, v0, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(grads1), jax.tree.leaves(grads0)):
    assert a.shape == b.shape and float(jnp.max(jnp.abs(b))) > 0
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
