"""Language models exported as transformers folders (GPT2LMHeadModel, GPTNeoXForCausalLM,
MegatronBertModel / ...ForMaskedLM) and the LSTM's torch module (docs/export.md) compute
ssl_jax's logits or features, at init and after a few training steps, with and without
padding; import gives back identical variables, also from a folder transformers wrote, and
stock transformers checkpoints (LayerNorm epsilon 1e-5) import to the same logits."""
import json
import os
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
os.environ["HF_HUB_OFFLINE"] = "1"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import optax  # noqa: E402

from conftest import REPO  # noqa: E402
from ssl_jax import convert, models  # noqa: E402
from ssl_jax.convert import gpt2, gpt_neox, lstm, megatron_bert  # noqa: E402
from ssl_jax.errors import ConfigError  # noqa: E402
from ssl_jax.tasks import language  # noqa: E402

TOL = 1e-4
V, B, T = 67, 2, 32
PAD_FROM = 21  # BERT: the second sequence's tokens from here on are padding
CASES = {  # model fields over _BASE; the converter; the transformers class loading the export
    # GPT-2's own LayerNorm epsilon here, and in the BERT with the masked-LM head.
    "gpt2": (dict(name="gpt", position="learned", layer_norm_eps=1e-5), gpt2,
             transformers.AutoModelForCausalLM),
    "gpt_neox": (dict(name="gpt", position="rope"), gpt_neox, transformers.AutoModelForCausalLM),
    "bert_tied": (dict(name="bert", mlm_head="tied"), megatron_bert, transformers.AutoModel),
    "bert_transform": (dict(name="bert", mlm_head="transform", layer_norm_eps=1e-5),
                       megatron_bert, transformers.AutoModelForMaskedLM),
    "lstm": (dict(name="lstm"), lstm, None),
}
_BASE = dict(num_layers=2, num_heads=4, width=32, mlp_ratio=4, dropout=0.1, position="learned",
             max_len=T, remat=False, dtype="float32", attention="auto", matmul="auto",
             layer_norm_eps=1e-6)
EOS = 3  # a tokenizer's end-of-document id


def _model_cfg(fields):
  return ml_collections.ConfigDict(dict(_BASE, **fields))


def _batch():
  """(tokens_BxT, pad_mask_BxT, targets_BxT): real tokens True; BERT pads the second row."""
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, V, (B, T)).astype(np.int32)
  targets = rng.integers(0, V, (B, T)).astype(np.int32)
  pad_mask = np.ones((B, T), bool)
  pad_mask[1, PAD_FROM:] = False
  return tokens, pad_mask, targets


def _ssl_jax_outputs(model, params, cfg, tokens, pad_mask):
  """What the export must reproduce: logits, or BERT's features under model.mlm_head="tied"."""
  if cfg.name != "bert":
    return np.asarray(model.apply({"params": params}, tokens))
  method = "features" if cfg.mlm_head == "tied" else None
  return np.asarray(model.apply({"params": params}, tokens, pad_mask_BxT=pad_mask,
                                method=method))


def _trained(model, params, cfg, tokens, pad_mask, targets, steps=3):
  """Adam steps on a cross-entropy (next token, or BERT's targets at real tokens), dropout on."""
  optimizer = optax.adam(1e-2)
  bert = cfg.name == "bert"

  @jax.jit
  def step(params, opt_state, key):
    def loss_fn(params):
      logits = model.apply({"params": params}, tokens, pad_mask_BxT=pad_mask if bert else None,
                           train=True, rngs={"dropout": key})
      if bert:
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        return jnp.sum(ce * pad_mask) / jnp.sum(pad_mask)
      return optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], tokens[:, 1:]).mean()
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  opt_state = optimizer.init(params)
  for i in range(steps):
    params, opt_state = step(params, opt_state, jax.random.key(i))
  return params


def _docs_lstm():
  """The namespace of the torch code block in docs/export.md's "The LSTM in PyTorch"."""
  text = open(os.path.join(REPO, "docs", "export.md"), encoding="utf-8").read()
  section = text.split("## The LSTM in PyTorch", 1)[1]
  code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
  namespace = {}
  exec(compile(code, "docs/export.md", "exec"), namespace)  # noqa: S102
  return namespace


def _exported_outputs(name, out_dir, tokens, pad_mask):
  """(outputs, loaded model) of the export in out_dir, loaded without any ssl_jax code."""
  fields, module, auto = CASES[name]
  if auto is None:
    model = _docs_lstm()["load_lstm"](out_dir)
    with torch.no_grad():
      return model(torch.from_numpy(tokens.astype(np.int64))).numpy(), model
  model, info = auto.from_pretrained(out_dir, output_loading_info=True)
  assert {k: v for k, v in info.items() if v} == {}, info  # no missing/unexpected weights
  with torch.no_grad():
    ids = torch.from_numpy(tokens.astype(np.int64))
    if fields["name"] != "bert":
      return model(ids).logits.numpy(), model
    out = model(ids, attention_mask=torch.from_numpy(pad_mask.astype(np.int64)))
  return (out.last_hidden_state if fields["mlm_head"] == "tied" else out.logits).numpy(), model


def _assert_same_tree(a, b):
  flat_a = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(a)}
  flat_b = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(b)}
  assert sorted(flat_a) == sorted(flat_b)
  for key, value in flat_a.items():
    other = np.asarray(flat_b[key])
    assert other.dtype == np.float32 and np.array_equal(np.asarray(value), other), key


@pytest.mark.parametrize("name", sorted(CASES))
def test_export_computes_what_ssl_jax_computes(name, tmp_path):
  fields, module, _ = CASES[name]
  cfg = _model_cfg(fields)
  assert module.unsupported(cfg) is None
  model = models.language_model(cfg, V, platform="cpu")
  tokens, pad_mask, targets = _batch()
  params = model.init(jax.random.key(0), tokens)["params"]
  diffs, before = [], None
  for stage in ("init", "trained"):
    if stage == "trained":
      params = _trained(model, params, cfg, tokens, pad_mask, targets)
    hf_config, tensors = module.to_hf({"params": params}, cfg, V, eos_id=EOS)
    out_dir = str(tmp_path / stage)
    convert.save(out_dir, hf_config, tensors)
    got, loaded = _exported_outputs(name, out_dir, tokens, pad_mask)
    want = _ssl_jax_outputs(model, params, cfg, tokens, pad_mask)
    real = pad_mask if cfg.name == "bert" else np.ones_like(pad_mask)
    diff = float(np.abs(got - want)[real].max())
    diffs.append(f"{stage} {diff:.2e}")
    assert diff < TOL, (stage, diff)
    if before is not None:
      assert np.abs(want - before).max() > 100 * TOL  # the steps did move the model
    before = want
    if "architectures" in hf_config:
      assert type(loaded).__name__ == hf_config["architectures"][0]
      eps = "layer_norm_epsilon" if name == "gpt2" else "layer_norm_eps"
      assert getattr(loaded.config, eps) == cfg.layer_norm_eps
      assert loaded.config.eos_token_id == EOS
      assert loaded.config.bos_token_id == (EOS if cfg.name == "gpt" else None)

    # Import: the saved folder back to identical variables and the same model fields.
    variables, model_fields = module.from_hf(*convert.load(out_dir))
    _assert_same_tree(variables, {"params": params})
    assert model_fields == {k: cfg[k] for k in model_fields}, model_fields
  # ... and from the folder transformers itself writes (its own config.json, tied weights
  # left out).
  if hasattr(loaded, "save_pretrained"):
    loaded.save_pretrained(str(tmp_path / "resaved"))
    hf_config, tensors = convert.load(str(tmp_path / "resaved"))
    _assert_same_tree(module.from_hf(hf_config, tensors)[0], {"params": params})
  print(f"{name}: max abs diff {', '.join(diffs)}")


def test_bert_padding_does_not_reach_real_tokens():
  """ssl_jax's pad mask and HF's attention_mask hide the same keys: the real tokens of a
  padded sequence see the same features whatever the padding holds."""
  cfg = _model_cfg(dict(name="bert", mlm_head="tied"))
  model = models.language_model(cfg, V, platform="cpu")
  tokens, pad_mask, _ = _batch()
  params = model.init(jax.random.key(0), tokens)["params"]
  other = tokens.copy()
  other[1, PAD_FROM:] = (other[1, PAD_FROM:] + 7) % V
  a = _ssl_jax_outputs(model, params, cfg, tokens, pad_mask)
  b = _ssl_jax_outputs(model, params, cfg, other, pad_mask)
  np.testing.assert_allclose(a[pad_mask], b[pad_mask], atol=1e-6)
  assert not np.allclose(a[~pad_mask], b[~pad_mask], atol=1e-4)  # the padding itself moved


def test_what_cannot_be_exported_is_named():
  rope_bert = _model_cfg(dict(name="bert", position="rope"))
  reason = megatron_bert.unsupported(rope_bert)
  assert "model.position='rope'" in reason and "MegatronBertModel" in reason
  assert "GPTNeoX" in gpt2.unsupported(_model_cfg(dict(name="gpt", position="rope")))
  assert "GPT2" in gpt_neox.unsupported(_model_cfg(dict(name="gpt", position="learned")))
  assert lstm.unsupported(_model_cfg(dict(name="gpt"))) is not None
  # BERT without the transform head: the encoder, and the note says how to get the head.
  tied = megatron_bert.notes(_model_cfg(dict(name="bert", mlm_head="tied")))
  assert "MegatronBertModel" in tied[0] and "--config.model.mlm_head=transform" in tied[0]
  assert megatron_bert.unsupported(_model_cfg(dict(name="bert", mlm_head="tied"))) is None


def test_imports_refuse_what_ssl_jax_does_not_compute():
  cfg = _model_cfg(dict(name="gpt", position="rope"))
  model = models.language_model(cfg, V, platform="cpu")
  params = model.init(jax.random.key(0), _batch()[0])["params"]
  hf_config, tensors = gpt_neox.to_hf({"params": params}, cfg, V)
  pythia_like = {**hf_config, "use_parallel_residual": True, "layer_norm_eps": 1e-5,
                 "rope_parameters": None, "rotary_pct": 0.25}
  with pytest.raises(ConfigError) as e:
    gpt_neox.from_hf(pythia_like, tensors)
  for words in ("use_parallel_residual", "0.25 of each head"):
    assert words in str(e.value)
  assert "layer_norm_eps" not in str(e.value)  # any epsilon imports (model.layer_norm_eps)
  with pytest.raises(ConfigError, match="layer_norm_eps=-1"):
    gpt_neox.from_hf({**hf_config, "layer_norm_eps": -1}, tensors)

  cfg = _model_cfg(dict(name="gpt", position="learned"))
  params = models.language_model(cfg, V, platform="cpu").init(
      jax.random.key(0), _batch()[0])["params"]
  hf_config, tensors = gpt2.to_hf({"params": params}, cfg, V)
  with pytest.raises(ConfigError, match="activation_function='gelu'"):
    gpt2.from_hf({**hf_config, "activation_function": "gelu"}, tensors)


def _stock(config, tmp_path):
  """A transformers model made from `config` alone, saved as transformers saves it, and
  imported: (its logits, the ssl_jax model config from_hf returned, the variables)."""
  torch.manual_seed(0)
  hf_model = transformers.AutoModelForCausalLM.from_config(config).eval()
  hf_model.save_pretrained(str(tmp_path))  # safetensors
  module = convert.module_for_hf(json.loads((tmp_path / "config.json").read_text()))
  variables, fields = module.from_hf(*convert.load(str(tmp_path)))
  tokens = np.random.default_rng(1).integers(0, config.vocab_size, (B, T))
  with torch.no_grad():
    want = hf_model(torch.from_numpy(tokens)).logits.numpy()
  return tokens, want, _model_cfg(fields), variables


def _stock_parity(config, tmp_path):
  """Max abs difference of ssl_jax's logits from the stock model's; and with ssl_jax's
  default epsilon instead of the imported one, to show that the field is what matters."""
  tokens, want, cfg, variables = _stock(config, tmp_path)
  assert cfg.layer_norm_eps == 1e-5
  diff = lambda cfg: float(np.abs(np.asarray(models.language_model(
      cfg, config.vocab_size, platform="cpu").apply(variables, tokens)) - want).max())
  return diff(cfg), diff(ml_collections.ConfigDict(dict(cfg, layer_norm_eps=1e-6)))


def test_stock_gpt2_imports_exactly(tmp_path):
  config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=300,
                                   n_positions=32)
  assert config.layer_norm_epsilon == 1e-5  # GPT-2's own
  exact, flax_default = _stock_parity(config, tmp_path)
  print(f"stock GPT-2: max abs diff {exact:.2e} (with eps 1e-6: {flax_default:.2e})")
  assert exact < TOL < flax_default


def _neox_config(**kwargs):
  return transformers.GPTNeoXConfig(
      vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
      intermediate_size=128, max_position_embeddings=32, hidden_act="gelu_new",
      tie_word_embeddings=True, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                 "partial_rotary_factor": 1.0}, **kwargs)


def test_stock_gpt_neox_imports_exactly(tmp_path):
  config = _neox_config(use_parallel_residual=False)
  assert config.layer_norm_eps == 1e-5
  exact, flax_default = _stock_parity(config, tmp_path)
  print(f"stock GPT-NeoX: max abs diff {exact:.2e} (with eps 1e-6: {flax_default:.2e})")
  assert exact < TOL < flax_default


def test_stock_gpt_neox_with_parallel_residual_is_refused(tmp_path):
  with pytest.raises(ConfigError, match=r"use_parallel_residual=True \(ssl_jax's blocks are "
                                        r"sequential\)"):
    _stock(_neox_config(use_parallel_residual=True), tmp_path)


def test_mlm_head_is_a_bert_option_and_tied_changes_nothing():
  tokens = _batch()[0]
  bert = models.language_model(_model_cfg(dict(name="bert")), V, platform="cpu")  # no field
  tied = models.language_model(_model_cfg(dict(name="bert", mlm_head="tied")), V,
                               platform="cpu")
  a, b = (m.init(jax.random.key(0), tokens)["params"] for m in (bert, tied))
  _assert_same_tree(a, b)
  assert not any(k.startswith("mlm_") for k in a)
  transform = models.language_model(_model_cfg(dict(name="bert", mlm_head="transform")), V,
                                    platform="cpu")
  params = transform.init(jax.random.key(0), tokens)["params"]
  assert params["mlm_bias"].shape == (V,) and params["mlm_dense"]["kernel"].shape == (32, 32)

  config = ml_collections.ConfigDict({"model": _model_cfg(dict(name="gpt")),
                                      "data": {"seq_len": T}})
  language.validate(config)
  config.model.mlm_head = "transform"
  with pytest.raises(ConfigError, match="model.mlm_head='transform'.*bert"):
    language.validate(config)
  config.model.name, config.model.mlm_head = "bert", "dense"
  with pytest.raises(ConfigError, match="'tied' or 'transform'"):
    language.validate(config)


def test_lstm_config_names_the_torch_module():
  cfg = _model_cfg(dict(name="lstm"))
  params = models.language_model(cfg, V).init(jax.random.key(0), _batch()[0])["params"]
  hf_config, tensors = lstm.to_hf({"params": params}, cfg, V)
  assert hf_config == {"model_type": "ssl_jax_lstm", "vocab_size": V, "width": 32,
                       "num_layers": 2, "max_len": T}
  assert "architectures" not in hf_config
  assert sorted(tensors) == sorted(_docs_lstm()["LSTMLanguageModel"](V, 32, 2).state_dict())
  assert json.loads(json.dumps(hf_config)) == hf_config


def test_runs_recorded_before_added_model_fields_resume_unchanged():
  """configs/bert_tiny.py gained model.mlm_head and model.layer_norm_eps: a run recorded
  without them had "tied" and 1e-6."""
  from configs import bert_tiny
  from ssl_jax import config_check, run_info
  current = bert_tiny.get_config().to_dict()
  current["model"]["mlm_head"] = "tied"  # the head such a run had
  recorded = json.loads(json.dumps(current))
  del recorded["model"]["mlm_head"], recorded["model"]["layer_norm_eps"]
  assert run_info.config_diff(recorded, current) == []
  current["model"].update(mlm_head="transform", layer_norm_eps=1e-5)
  assert run_info.config_diff(recorded, current) == [
      "  model.layer_norm_eps: 1e-06 -> 1e-05", "  model.mlm_head: 'tied' -> 'transform'"]
  config = bert_tiny.get_config()
  config.model.mlm_head, config.model.layer_norm_eps = "dense", 0.0
  with pytest.raises(ConfigError) as e:
    config_check.check(config)
  for words in ("model.mlm_head must be", "model.layer_norm_eps must be positive"):
    assert words in str(e.value)
  # ... and read back from a checkpoint's metadata, where anyone may have edited it.
  from ssl_jax import checkpoint_metadata
  recorded["model"]["layer_norm_eps"] = 1e-5
  checkpoint_metadata.check_config(recorded)
  for bad in (-1.0, "1e-5", True):
    recorded["model"]["layer_norm_eps"] = bad
    with pytest.raises(ConfigError, match="model.layer_norm_eps"):
      checkpoint_metadata.check_config(recorded)
