"""Trusting what is read back: checksums of damaged checkpoints, readers that skip
unreadable or vanishing steps and change nothing, the dataset a run resumes on, and
evaluation that never follows paths written in a checkpoint."""
import json
import os
import shutil
import sys
from unittest import mock

import chex
import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from conftest import run_cli, tiny_lm_config
from ssl_jax import checkpoint_metadata, checksums, evaluate, parallel, sample, train
from ssl_jax.checkpoint import Checkpointer, load_latest
from ssl_jax.errors import ConfigError

STEPS = 12


@pytest.fixture(scope="module")
def corpus(corpus_dir, tmp_path_factory):
  """A private copy of the corpus: one test adds a file to it (and takes it out again)."""
  out = str(tmp_path_factory.mktemp("trust_corpus"))
  for name in os.listdir(corpus_dir):
    shutil.copy(os.path.join(corpus_dir, name), out)
  return out


def _config(corpus, data_dir):
  return tiny_lm_config(f"{corpus}/*.py", data_dir, total_steps=STEPS, checkpoint_every=6,
                        eval_every=STEPS)


@pytest.fixture(scope="module")
def straight(corpus, data_dir, tmp_path_factory):
  """(workdir, final state) of an uninterrupted run with checkpoints at steps 6 and 12."""
  workdir = str(tmp_path_factory.mktemp("trust") / "straight")
  train.train(_config(corpus, data_dir), workdir)
  return workdir, load_latest(workdir)[1]


def _copy(straight, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(straight[0], workdir, ignore=shutil.ignore_patterns(".lock"))
  return workdir


def _data_files(workdir, step):
  state = os.path.join(workdir, "checkpoints", str(step), "state")
  return [os.path.join(d, n) for d, _, names in os.walk(state) for n in names
          if os.path.basename(d) == "d"]  # ocdbt data files: state/**/d/<hash>


def _biggest_data_file(workdir, step):
  return max(_data_files(workdir, step), key=os.path.getsize)


def _restore_unchecked(workdir, step):
  """The state as Orbax alone reads it, without the checksum comparison."""
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
  try:
    with mock.patch.object(checksums, "verify", lambda tree, recorded: None):
      return ckpt.restore(step)[0]
  finally:
    ckpt.close()


def _damage_values_silently(workdir, step, saved):
  """Inverts 16 bytes in the middle of the checkpoint's largest data file, at the first
  offset where Orbax still restores it, with other values: the damage that went unnoticed
  before checksums. (Elsewhere zstd notices; where, depends on the file layout.)"""
  path = _biggest_data_file(workdir, step)
  with open(path, "rb") as f:
    original = f.read()
  for fraction in np.linspace(0.5, 0.95, 19):
    at = int(len(original) * fraction)
    with open(path, "wb") as f:
      f.write(original[:at] + bytes(b ^ 0xFF for b in original[at:at + 16]) + original[at + 16:])
    try:
      state = _restore_unchecked(workdir, step)
    except Exception:  # noticed by the decoder: try another offset
      continue
    if any(not np.array_equal(a, b, equal_nan=True)
           for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(saved))):
      return
  pytest.fail(f"no offset in {path} changes values without a read error")


def _truncate(workdir, step):
  path = _biggest_data_file(workdir, step)
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _snapshot(workdir):
  return sorted((os.path.relpath(os.path.join(d, n), workdir),
                 os.path.getsize(os.path.join(d, n)), os.path.getmtime(os.path.join(d, n)))
                for d, _, names in os.walk(workdir) for n in names)


# --- checksums ---------------------------------------------------------------------------

def test_checksums_depend_on_bits_and_positions_not_on_sharding():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(16, 24)).astype(np.float32)
  tree = {"f32": x, "bf16": x.astype(jax.numpy.bfloat16), "i32": np.arange(48, dtype=np.int32),
          "u32": np.uint32(7), "scalar": np.float32(1.5)}
  want = checksums.of_tree(tree)
  assert len(set(want.values())) == len(want)
  for fsdp, spec in ((1, P()), (8, P(None, "fsdp")), (2, P("data", "fsdp")), (8, P("fsdp"))):
    mesh = parallel.make_mesh(fsdp)
    placed = {k: jax.device_put(v, NamedSharding(mesh, spec if np.ndim(v) == 2 else P()))
              for k, v in tree.items()}
    assert checksums.of_tree(placed) == want, spec
  swapped = x.copy()
  swapped[3, [4, 5]] = x[3, [5, 4]]
  flipped = x.copy()
  flipped.view(np.uint32)[7, 7] ^= 1 << 31  # -0.0 vs 0.0 style: one bit
  for changed in (swapped, flipped):
    assert checksums.of_tree({"f32": changed})["f32"] != want["f32"]
  with pytest.raises(checksums.ChecksumMismatch, match="1 of 5 arrays differ.*f32"):
    checksums.verify({**tree, "f32": swapped}, want)


def test_damaged_array_data_is_caught_and_training_resumes_from_the_previous(
    straight, corpus, data_dir, tmp_path, capsys):
  workdir = _copy(straight, tmp_path)
  _damage_values_silently(workdir, STEPS, straight[1])
  train.train(_config(corpus, data_dir), workdir)
  out = capsys.readouterr().out
  assert f"checkpoint at step {STEPS} could not be restored (ChecksumMismatch" in out
  assert "Resumed from the checkpoint at step 6" in out
  assert os.path.isdir(os.path.join(workdir, "checkpoints", f"{STEPS}.unreadable"))
  step, state, _ = load_latest(workdir)
  assert step == STEPS
  chex.assert_trees_all_equal(state["params"], straight[1]["params"])
  chex.assert_trees_all_equal(state["opt_state"], straight[1]["opt_state"])


def test_checkpoints_without_checksums_restore_as_before(straight, tmp_path):
  workdir = _copy(straight, tmp_path)
  path = os.path.join(workdir, "checkpoints", str(STEPS), "metadata", "metadata")
  with open(path) as f:
    metadata = json.load(f)
  assert len(metadata.pop("checksums")) == len(jax.tree.leaves(straight[1]))
  with open(path, "w") as f:
    json.dump(metadata, f)
  step, state, restored = load_latest(workdir)
  assert step == STEPS and "checksums" not in restored
  chex.assert_trees_all_equal(state["params"], straight[1]["params"])


def test_a_second_unreadable_checkpoint_of_a_step_gets_a_free_name(straight, tmp_path):
  workdir = _copy(straight, tmp_path)
  ckpts = os.path.join(workdir, "checkpoints")
  for taken in (f"{STEPS}.unreadable", f"{STEPS}.unreadable.1"):  # from earlier restarts
    os.makedirs(os.path.join(ckpts, taken, "state"))
  _truncate(workdir, STEPS)
  ckpt = Checkpointer(ckpts, async_save=False)
  messages = []
  assert ckpt.restore_latest_good(log=messages.append)[0] == 6
  ckpt.close()
  assert f"moved it to {ckpts}/{STEPS}.unreadable.2" in messages[0]
  assert sorted(os.listdir(ckpts)) == ["12.unreadable", "12.unreadable.1", "12.unreadable.2", "6"]
  assert os.listdir(os.path.join(ckpts, f"{STEPS}.unreadable")) == ["state"]  # untouched


# --- readers: sample, evaluate, load_latest ------------------------------------------------

def test_readers_skip_an_unreadable_latest_checkpoint_and_change_nothing(straight, tmp_path,
                                                                         capsys):
  workdir = _copy(straight, tmp_path)
  _damage_values_silently(workdir, STEPS, straight[1])
  before = _snapshot(workdir)
  warnings = []
  step, _, metadata = load_latest(workdir, warn=warnings.append)
  assert step == 6 and metadata["step"] == 6
  assert len(warnings) == 1 and f"skipping the checkpoint at step {STEPS}" in warnings[0]
  capsys.readouterr()
  model_cfg, _, params = sample.load_for_sampling(workdir)  # what `ssl_jax.sample` reads
  assert model_cfg.width == 32 and params["embed"]["embedding"].shape == (257, 32)
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith(f"warning: skipping the checkpoint at step {STEPS}")
  assert "ChecksumMismatch" in err[0]
  assert _snapshot(workdir) == before  # nothing renamed, written or deleted


def test_readers_exit_2_when_no_checkpoint_restores(straight, tmp_path):
  workdir = _copy(straight, tmp_path)
  _truncate(workdir, 6)
  _damage_values_silently(workdir, STEPS, straight[1])
  with pytest.raises(ConfigError, match="None of the checkpoints .* could be restored"):
    evaluate.evaluate(workdir, "perplexity")
  out = run_cli("ssl_jax.sample", "--workdir", workdir, "--prompt", "x", "--max_new_tokens", "5")
  assert out.returncode == 2, out.stderr[-3000:]
  assert "None of the checkpoints" in out.stderr and "Traceback" not in out.stderr
  assert len(out.stderr.splitlines()) < 6


def test_readers_list_again_when_a_step_vanishes_mid_read(straight, tmp_path, monkeypatch):
  """A live run with max_to_keep deletes old steps (and writes new ones) while we read."""
  workdir = _copy(straight, tmp_path)
  ckpts = os.path.join(workdir, "checkpoints")
  real_restore = Checkpointer.restore
  plan = {}  # step -> the step the "trainer" writes as it deletes that one (or None)

  def restore(self, step, *args, **kwargs):
    if step in plan:
      newer = plan.pop(step)
      if newer is not None:
        shutil.copytree(os.path.join(ckpts, str(step)), os.path.join(ckpts, str(newer)))
      shutil.rmtree(os.path.join(ckpts, str(step)))
    return real_restore(self, step, *args, **kwargs)

  monkeypatch.setattr(Checkpointer, "restore", restore)
  warnings = []
  plan[STEPS] = 18
  assert load_latest(workdir, warn=warnings.append)[0] == 18  # listed again: the new one
  plan[18] = None
  assert load_latest(workdir, warn=warnings.append)[0] == 6  # deleted, nothing newer
  assert warnings == [] and plan == {}


# --- the dataset a run resumes on ----------------------------------------------------------

def test_resuming_on_changed_data_is_refused_unless_allowed(straight, corpus, data_dir,
                                                            tmp_path):
  workdir = _copy(straight, tmp_path)
  shutil.rmtree(os.path.join(workdir, "checkpoints", str(STEPS)))
  extra = os.path.join(corpus, "zz_added.py")
  shutil.copy(os.path.join(corpus, "decoder.py"), extra)
  try:
    with pytest.raises(ConfigError) as refused:
      train.train(_config(corpus, data_dir), workdir)
    message = str(refused.value)
    assert "differ from the data the checkpoint was trained on" in message
    assert message.count("local_text/files_") == 2 and "--allow_data_change" in message
    other = str(tmp_path / "other")
    shutil.copytree(workdir, other, ignore=shutil.ignore_patterns(".lock"))
    out = run_cli("ssl_jax.main", "--config", "configs/gpt_tiny.py", "--workdir", other,
                  "--allow_data_change", *_cli_flags(corpus, data_dir))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Resuming on the new data (--allow_data_change)" in out.stdout
    assert "Resumed from the checkpoint at step 6" in out.stdout
  finally:
    os.remove(extra)


def _cli_flags(corpus, data_dir):
  c = _config(corpus, data_dir)
  return [f"--config.data.source={c.data.source}", f"--config.data.data_dir={data_dir}",
          f"--config.data.seq_len={c.data.seq_len}", f"--config.model.max_len={c.model.max_len}",
          f"--config.model.num_layers={c.model.num_layers}",
          f"--config.model.num_heads={c.model.num_heads}", f"--config.model.width={c.model.width}",
          f"--config.total_steps={c.total_steps}", f"--config.batch_size={c.batch_size}",
          f"--config.log_every={c.log_every}", f"--config.eval_every={c.eval_every}",
          f"--config.checkpoint_every={c.checkpoint_every}", f"--config.eval_steps={c.eval_steps}",
          f"--config.optim.warmup_steps={c.optim.warmup_steps}"]


# --- evaluation and checkpoint metadata ----------------------------------------------------

def test_evaluate_never_follows_paths_in_checkpoint_metadata(straight, corpus, data_dir,
                                                             tmp_path, capsys):
  """A crafted checkpoint points data.source and data.data_dir elsewhere: nothing there is
  listed, read or written; the data come from the evaluation's own options."""
  outside = tmp_path / "outside"
  (outside / "code").mkdir(parents=True)
  for name in ("a.py", "b.py", "c.py"):
    (outside / "code" / name).write_text("secret = 1\n" * 50)
  workdir = _copy(straight, tmp_path)
  path = os.path.join(workdir, "checkpoints", str(STEPS), "metadata", "metadata")
  with open(path) as f:
    metadata = json.load(f)
  metadata["config"]["data"]["source"] = f"{outside}/code/*.py"
  metadata["config"]["data"]["data_dir"] = f"{outside}/tfds"
  with open(path, "w") as f:
    json.dump(metadata, f)
  before = _snapshot(str(outside))
  touched = []

  def audit(event, args):
    if event in ("open", "os.listdir", "os.scandir", "glob.glob", "os.mkdir", "os.rename",
                 "os.remove", "shutil.copyfile") and any(str(outside) in str(a) for a in args):
      touched.append((event, args))

  sys.addaudithook(audit)  # stays for the session; it only records paths under `outside`
  options = evaluate.Options(data_source=f"{corpus}/*.py", data_dir=data_dir)
  result = evaluate.evaluate(workdir, "perplexity", options)
  assert result["step"] == STEPS and result["tokens"] > 0
  assert touched == [] and _snapshot(str(outside)) == before
  assert f"data.source='{outside}/code/*.py'" in capsys.readouterr().err  # said, not followed


def test_local_config_replaces_every_path_field():
  config = {"objective": "next_token", "init_from": "/etc", "data": {
      "name": "local_text", "source": "/etc/*", "data_dir": "/etc", "cache_path": "/x"}}
  local, replaced = checkpoint_metadata.local_config(config, "mine/*.txt", "")
  assert (local.data.source, local.data.data_dir) == ("mine/*.txt", "")
  assert local.data.cache_path == "" and local.init_from == ""
  assert set(replaced) == {"data.source", "data.data_dir", "data.cache_path", "init_from"}


@pytest.fixture(scope="module")
def good_metadata(straight):
  return load_latest(straight[0])[2]


@pytest.mark.parametrize("field,value,message", [
    ("config.objective", "os.system", "config.objective"),
    ("config.model.name", "../gpt", "config.model.name"),
    ("config.model.num_layers", -1, "config.model.num_layers"),
    ("config.model.width", "32", "config.model.width"),
    ("config.model.dropout", 7.0, "config.model.dropout"),
    ("config.data.name", "../../etc", "config.data.name"),
    ("config.data.train_split", "../../../tmp/x", "config.data.train_split"),
    ("config.data.seq_len", 2 ** 40, "config.data.seq_len"),
    ("config.data.weird key", 1, "field name"),
    ("tokenizer", {"kind": "pickle"}, "tokenizer"),
    ("tokenizer", {"kind": "words", "words": [1, 2]}, "tokenizer"),
    ("vocab_size", 10 ** 9, "vocab_size"),
    ("encoder_path", "../../x", "encoder_path"),
])
def test_bad_checkpoint_metadata_is_a_config_error(good_metadata, field, value, message):
  metadata = json.loads(json.dumps(good_metadata))
  checkpoint_metadata.check(metadata)  # as written by training: fine
  *parents, last = field.split(".")
  node = metadata
  for part in parents:
    node = node[part]
  node[last] = value
  with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
    checkpoint_metadata.check(metadata)


def test_a_tokenizer_that_does_not_load_is_a_config_error():
  import base64
  spec = {"kind": "sentencepiece", "model": base64.b64encode(b"not a model").decode()}
  with pytest.raises(ConfigError, match="tokenizer: it could not be loaded"):
    checkpoint_metadata.tokenizer({"tokenizer": spec})
  assert checkpoint_metadata.tokenizer({"tokenizer": {"kind": "bytes"}}).vocab_size == 257
