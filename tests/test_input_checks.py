"""Bad input is caught before anything is built or written, in one clear message: config
fields, config files, workdirs, corpora and image folders; and the two runtime failures
that have their own exit codes (a full disk, a batch too large for device memory)."""
import errno
import os
import types

import jax
import jax.numpy as jnp
import pytest
from PIL import Image

from conftest import CONFIG_NAMES, REPO, load_config
from ssl_jax import config_check, failures, train
from ssl_jax.errors import ConfigError, DataError, StorageError


BAD_FIELDS = [
    # Shared by every config.
    ("gpt_tiny", {"eval_steps": 0}, "eval_steps must be a positive integer; got 0."),
    ("gpt_tiny", {"keep_checkpoints": 0}, "keep_checkpoints must be at least 1; got 0."),
    ("gpt_tiny", {"total_steps": -5}, "total_steps must be a positive integer"),
    ("gpt_tiny", {"log_every": 0}, "log_every must be a positive integer"),
    ("gpt_tiny", {"eval_every": 0}, "eval_every must be a positive integer"),
    ("gpt_tiny", {"checkpoint_every": 0}, "checkpoint_every must be a positive integer"),
    ("gpt_tiny", {"grad_accum": 0}, "grad_accum must be a positive integer"),
    ("gpt_tiny", {"batch_size": 0}, "batch_size must be a positive integer"),
    ("gpt_tiny", {"parallel": "xla"}, "parallel must be one of jit, pmap; got 'xla'."),
    ("gpt_tiny", {"objective": "jepa"}, "objective must be one of next_token, masked_lm"),
    ("gpt_tiny", {"mesh.fsdp": 0}, "mesh.fsdp must be a positive integer"),
    ("gpt_tiny", {"seed": 2 ** 63}, "seed must be a 64-bit integer"),
    ("gpt_tiny", {"optim.name": "sgd"}, "optim.name must be one of adamw, lars; got 'sgd'."),
    ("gpt_tiny", {"optim.lr": 0.0}, "optim.lr must be positive; got 0.0."),
    ("gpt_tiny", {"optim.lr": float("nan")}, "optim.lr must be positive; got nan."),
    ("gpt_tiny", {"optim.warmup_steps": -1}, "optim.warmup_steps must be 0 or a positive"),
    ("gpt_tiny", {"optim.min_lr_ratio": 1.5}, "optim.min_lr_ratio must be in [0, 1]"),
    ("gpt_tiny", {"optim.b1": 1.0}, "optim.b1 must be in [0, 1)"),
    ("gpt_tiny", {"optim.b2": -0.1}, "optim.b2 must be in [0, 1)"),
    ("gpt_tiny", {"optim.weight_decay": -1.0}, "optim.weight_decay must be 0 or more"),
    ("gpt_tiny", {"optim.grad_clip": -1.0}, "optim.grad_clip must be 0 or more"),
    # Language models.
    ("gpt_tiny", {"model.dtype": "foo"}, "model.dtype must be one of float32, bfloat16; got 'foo'."),
    ("gpt_tiny", {"data.seq_len": 0}, "data.seq_len must be a positive integer; got 0."),
    ("gpt_tiny", {"model.mlp_ratio": 0}, "model.mlp_ratio must be a positive integer; got 0."),
    ("gpt_tiny", {"model.num_layers": 0}, "model.num_layers must be a positive integer"),
    ("gpt_tiny", {"model.num_heads": 0}, "model.num_heads must be a positive integer"),
    ("gpt_tiny", {"model.width": -8}, "model.width must be a positive integer"),
    ("gpt_tiny", {"model.max_len": 0}, "model.max_len must be a positive integer"),
    ("gpt_tiny", {"model.dropout": 1.0}, "model.dropout must be in [0, 1)"),
    ("gpt_tiny", {"model.position": "alibi"}, "model.position must be one of learned, rope"),
    ("gpt_tiny", {"model.name": "bert"}, "model.name must be one of gpt, lstm; got 'bert'."),
    ("gpt_tiny", {"data.tokenizer": "bpe"}, "data.tokenizer must be one of bytes"),
    ("gpt_tiny", {"data.vocab_size": -1}, "data.vocab_size must be 0 or a positive integer"),
    ("gpt_tiny", {"data.tokenizer": "sentencepiece", "data.vocab_size": 100},
     "data.vocab_size must be at least 512 for data.tokenizer='sentencepiece'; got 100."),
    ("gpt_tiny", {"data.source": ""}, "data.source must name a glob of text files"),
    ("gpt_tiny", {"data.text_key": ""}, "data.text_key must not be empty"),
    ("gpt_tiny", {"data.eval_split": " "}, "data.eval_split must not be empty"),
    ("gpt_tiny", {"data.seq_len": 512}, "longer than the model's context"),  # task check
    ("bert_tiny", {"mlm.rate": 0.0}, "mlm.rate must be in (0, 1]"),
    ("bert_tiny", {"mlm.masking": "word"}, "mlm.masking must be one of token, span"),
    ("bert_tiny", {"mlm.span_length": 0}, "mlm.span_length must be a positive integer"),
    ("bert_tiny", {"mlm.deletion_rate": 1.0}, "mlm.deletion_rate must be in [0, 1)"),
    ("bert_tiny", {"model.name": "gpt"}, "model.name must be one of bert; got 'gpt'."),
    # Images.
    ("simclr_digits", {"data.image_size": 4}, "data.image_size must be an integer of at least 8"),
    ("simclr_digits", {"batch_size": 1}, "batch_size must be at least 2"),
    ("simclr_digits", {"simclr.temperature": 0.0}, "simclr.temperature must be positive"),
    ("simclr_digits", {"augment.preset": "moco"}, "augment.preset must be one of simclr, byol"),
    ("simclr_digits", {"augment.strength": -1.0}, "augment.strength must be 0 or more"),
    ("simclr_digits", {"augment.crop_min_scale": 0.0}, "augment.crop_min_scale must be in (0, 1]"),
    ("simclr_digits", {"augment.preset": "crop_flip"}, "simclr needs two views"),  # task check
    ("simclr_digits", {"head.out_dim": 0}, "head.out_dim must be a positive integer"),
    ("simclr_digits", {"head.hidden_dim": -1}, "head.hidden_dim must be 0 or a positive"),
    ("simclr_digits", {"head.num_layers": 0}, "head.num_layers must be a positive integer"),
    ("simclr_digits", {"model.name": "gpt"}, "model.name must be one of resnet, vit"),
    ("simclr_digits", {"model.stem": "tiny"}, "model.stem must be one of cifar, imagenet"),
    ("simclr_digits", {"model.pool": "max"}, "model.pool must be one of mean, cls"),
    ("simclr_digits", {"model.patch_size": 0}, "model.patch_size must be a positive integer"),
    ("simclr_digits", {"model.depth": -1}, "model.depth must be 0 or a positive integer"),
    ("simclr_digits", {"model.width": 0}, "width must be positive for a ResNet"),
    ("simclr_digits", {"model.name": "vit", "model.size": "huge"}, "model.size must be one of"),
    ("mae_digits", {"model.name": "resnet"}, "model.name must be one of vit"),
    ("dino_digits", {"augment.local_crops": 2, "augment.local_crop_min_scale": 0.5},
     "local crops are the small ones"),
    ("simclr_digits", {"model.depth": 19}, "is not a ResNet depth"),  # task check
    ("simclr_digits", {"model.dtype": "float64"}, "model.dtype must be one of float32, bfloat16"),
    ("simclr_digits", {"data.probe_split": ""}, "data.probe_split must not be empty"),
    ("simclr_digits", {"data.name": "image_folder", "data.source": ""},
     "data.source must name a folder of images when data.name='image_folder'; it is empty."),
    ("byol_digits", {"byol.base_decay": 1.0}, "byol.base_decay must be in [0, 1)"),
    ("byol_digits", {"model.name": "lstm"}, "model.name must be one of resnet, vit"),
]


@pytest.mark.parametrize("name,changes,message", BAD_FIELDS,
                         ids=[f"{n}:{','.join(c)}" for n, c, _ in BAD_FIELDS])
def test_bad_fields_are_config_errors_before_anything_is_built(name, changes, message):
  config = load_config(name, **changes)
  with pytest.raises(ConfigError) as refused:
    train.validate(config)
  assert message in str(refused.value)
  assert "\n" not in str(refused.value)  # one paragraph


def test_every_bad_field_is_named_in_one_paragraph():
  config = load_config("gpt_tiny", **{"eval_steps": 0, "model.dtype": "foo",
                                      "optim.b2": 2.0})
  with pytest.raises(ConfigError) as refused:
    config_check.check(config)
  text = str(refused.value)
  assert all(f in text for f in ("eval_steps", "model.dtype", "optim.b2")) and "\n" not in text


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_shipped_configs_pass_the_checks(name):
  config_check.check(load_config(name))


def test_every_rule_names_a_field_some_config_has():
  configs = [load_config(name) for name in CONFIG_NAMES]
  for name in config_check.RULES:
    assert any(config_check._lookup(c, name)[0] for c in configs), name


def test_relative_paths_are_recorded_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = load_config("gpt_tiny", **{"data.source": "corpus/**/*.txt", "data.data_dir": "tfds"})
  config_check.resolve_paths(config)
  assert config.data.source == str(tmp_path / "corpus/**/*.txt")
  assert config.data.data_dir == str(tmp_path / "tfds")
  untouched = load_config("gpt_tiny")  # "stdlib" and "" keep their meaning
  config_check.resolve_paths(untouched)
  assert (untouched.data.source, untouched.data.data_dir) == ("stdlib", "")
  folder = load_config("simclr_digits", **{"data.name": "image_folder", "data.source": "~/pics"})
  config_check.resolve_paths(folder)
  assert folder.data.source == os.path.expanduser("~/pics")


def test_unusable_workdirs_are_refused_without_creating_anything(tmp_path, monkeypatch):
  a_file = tmp_path / "file"
  a_file.write_text("x")
  with pytest.raises(ConfigError, match="is a file, not a directory"):
    config_check.check_workdir(str(a_file))
  with pytest.raises(ConfigError, match=f"{a_file} is a file, not a directory"):
    config_check.check_workdir(str(a_file / "sub" / "run"))
  config_check.check_workdir(str(tmp_path / "new" / "run"))  # fine, and still not made
  assert sorted(os.listdir(tmp_path)) == ["file"]
  real_statvfs = os.statvfs

  def read_only(path):  # what a read-only mount reports
    s = real_statvfs(path)
    return types.SimpleNamespace(f_flag=s.f_flag | os.ST_RDONLY)
  monkeypatch.setattr(os, "statvfs", read_only)
  with pytest.raises(ConfigError, match=f"{tmp_path} is on a read-only filesystem"):
    config_check.check_workdir(str(tmp_path / "run"))


@pytest.mark.parametrize("text,message", [
    ("def get_config(:\n  pass\n", "SyntaxError: invalid syntax"),
    ("def get_config():\n  raise ValueError('no such preset')\n",
     "ValueError: no such preset ({path}, line 2)"),
    ("import not_a_module_xyz\n", "ModuleNotFoundError: No module named 'not_a_module_xyz' "
     "({path}, line 1)"),
    ("X = 1\n", "defines no get_config() function"),
    ("def get_config():\n  return {'a': 1}\n", "returned dict, not an ml_collections.ConfigDict"),
])
def test_broken_config_files_are_named_with_their_error(tmp_path, text, message):
  path = tmp_path / "broken.py"
  path.write_text(text)
  problem = config_check.config_file_error(str(path))
  assert message.format(path=path) in problem and str(path) in problem
  assert "Traceback" not in problem and "\n" not in problem
  assert config_check.config_file_error(str(tmp_path / "none.py")).endswith("no such file.")
  assert config_check.config_file_error(str(tmp_path)).endswith("not a file.")
  assert config_check.config_file_error(f"{REPO}/configs/gpt_tiny.py") is None


def _corpus(folder, files: dict):
  os.makedirs(folder)
  for name, raw in files.items():
    (folder / name).write_bytes(raw)
  return str(folder / "*")


@pytest.mark.parametrize("files,counts", [
    ({f"{i}.txt": "café crème\n".encode("latin-1") for i in range(3)}, "3 are not UTF-8"),
    ({f"{i}.bin": bytes(range(256)) for i in range(3)}, "3 are not UTF-8"),
    ({f"{i}.bin": b"\x00\x01\x02binary" for i in range(3)}, "3 are not UTF-8"),
    ({f"{i}.txt": b"" for i in range(3)}, "and 3 are empty"),
    ({"a.txt": b"ok\n", "b.txt": b"\xff\xfe", "c.txt": b""}, "1 usable file(s) of 3"),
])
def test_corpus_without_text_is_a_data_error(tmp_path, files, counts):
  from ssl_jax.data.text_builder import LocalText
  builder = LocalText(source=_corpus(tmp_path / "c", files), data_dir=str(tmp_path / "tfds"))
  with pytest.raises(DataError, match="at least 2 files of UTF-8 text") as refused:
    builder.download_and_prepare()
  assert counts in str(refused.value)


def test_non_utf8_files_are_counted_and_skipped(tmp_path, capsys):
  from ssl_jax.data.text_builder import LocalText
  files = {f"{i}.py": f"x = {i}\n".encode() for i in range(4)}
  files.update({"latin.py": "é\n".encode("latin-1"), "nul.py": b"\x00\x00"})
  builder = LocalText(source=_corpus(tmp_path / "c", files), data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare()
  assert "skipped 2 file(s) that are not UTF-8 text" in capsys.readouterr().err
  sizes = [len(builder.as_data_source(split=s)) for s in ("train", "validation")]
  assert sum(sizes) == 4


def test_image_folder_of_corrupt_images_is_a_data_error(tmp_path, capsys):
  from ssl_jax.data import image_builders
  root = tmp_path / "pics"
  for label in ("a", "b"):
    os.makedirs(root / label)
    for i in range(12):
      (root / label / f"{i}.png").write_bytes(b"\x89PNG not really" + bytes([i]))
  builder = image_builders.ImageFolder(root=str(root), data_dir=str(tmp_path / "tfds"))
  with pytest.raises(DataError, match="could be read as an image"):
    builder.download_and_prepare()
  # With some readable images the others are skipped, and counted.
  mixed = tmp_path / "mixed"
  for split in ("train", "test"):
    for label in ("a", "b"):
      os.makedirs(mixed / split / label)
      for i in range(2):
        Image.new("RGB", (4, 4), (i, 0, 0)).save(mixed / split / label / f"{i}.png")
      (mixed / split / label / "bad.png").write_bytes(b"\x89PNG truncated")
  builder = image_builders.ImageFolder(root=str(mixed), data_dir=str(tmp_path / "tfds2"))
  builder.download_and_prepare()
  assert "skipped 2 file(s) that could not be read as images" in capsys.readouterr().err
  assert len(builder.as_data_source(split="train")) == 4


ORBAX_ENOSPC = ValueError(
    'RESOURCE_EXHAUSTED: Error writing "params.w/0" in OCDBT database at local file "/w/ckpt": '
    "Failed to write 1128592 bytes to file 9: No space left on device [os_error_code='28']")


def _raised_from(outer, inner):
  try:
    try:
      raise inner
    except BaseException as e:
      raise outer from e
  except BaseException as e:
    return e


@pytest.mark.parametrize("exc,code", [
    (OSError(errno.ENOSPC, "No space left on device", "/w/metrics.jsonl"), errno.ENOSPC),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), errno.EDQUOT),
    (OSError(errno.EROFS, "Read-only file system"), errno.EROFS),
    (ORBAX_ENOSPC, errno.ENOSPC),
    (_raised_from(RuntimeError("save failed"), ORBAX_ENOSPC), errno.ENOSPC),
    (ExceptionGroup("saves", [KeyError("x"), OSError(errno.ENOSPC, "full")]), errno.ENOSPC),
    (StorageError("the workdir could not be written"), None),
])
def test_storage_failures_are_recognised_through_wrappers(exc, code):
  found = failures.storage_failure(exc)
  assert found is not None and found[0] == code
  message = failures.storage_message(exc, "/w")
  assert "checkpoints already on disk are intact" in message and "\n" not in message


@pytest.mark.parametrize("exc", [ValueError("bad value"), OSError(errno.ENOENT, "missing"),
                                 MemoryError()])
def test_other_errors_are_not_storage_failures(exc):
  assert failures.storage_failure(exc) is None and failures.out_of_memory(exc) is None


def test_xla_out_of_memory_is_recognised():
  """The real error XLA raises when an allocation fails, raised bare or inside another."""
  with pytest.raises(jax.errors.JaxRuntimeError) as oom:
    jax.jit(lambda: jnp.zeros((2 ** 40,), jnp.float32))().block_until_ready()
  assert failures.out_of_memory(oom.value) is oom.value
  wrapped = _raised_from(RuntimeError("step failed"), oom.value)
  assert failures.out_of_memory(wrapped) is oom.value
  assert "Out of memory" in failures.xla_detail(oom.value)
  assert failures.out_of_memory(ORBAX_ENOSPC) is None  # a full disk also says RESOURCE_EXHAUSTED


def test_text_key_that_is_not_a_feature_is_a_config_error(corpus_dir, data_dir):
  from conftest import tiny_lm_config
  from ssl_jax.data import text
  config = tiny_lm_config(f"{corpus_dir}/*.py", data_dir, **{"data.text_key": "content"})
  with pytest.raises(ConfigError, match="data.text_key='content' is not a feature .* path, text"):
    text.load(config.data)


def test_long_sample_prompt_is_cut_not_an_error_after_training(corpus_dir, data_dir, tmp_path,
                                                                capsys):
  from conftest import tiny_lm_config
  from ssl_jax.tasks import make_task
  config = tiny_lm_config(f"{corpus_dir}/*.py", data_dir, sample_prompt="x" * 40)  # max_len 32
  task = make_task(config)
  params, model_state = task.init(jax.random.key(0))
  task.on_end(params, model_state, str(tmp_path))
  assert "--- sample ---" in capsys.readouterr().out


def test_sample_usage_errors():
  from ssl_jax import sample
  ok = dict(workdir="w", max_new_tokens=5, temperature=0.8, top_k=40, seed=0)
  assert sample.usage_error(types.SimpleNamespace(**ok), ["sample"]) is None
  for change, message in [({"workdir": None}, "--workdir is required"),
                          ({"max_new_tokens": 0}, "--max_new_tokens must be at least 1"),
                          ({"temperature": -1.0}, "--temperature must be 0"),
                          ({"top_k": -1}, "--top_k must be 0"),
                          ({"seed": 2 ** 64}, "--seed must be a 64-bit integer")]:
    assert message in sample.usage_error(types.SimpleNamespace(**{**ok, **change}), ["sample"])
  assert "unexpected" in sample.usage_error(types.SimpleNamespace(**ok), ["sample", "x"])
