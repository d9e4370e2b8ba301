"""The workdir's own state: one trainer at a time, damaged metrics.jsonl and run.json, and a
failed first start that must not block the corrected retry."""
import errno
import fcntl
import json
import os
import shutil
import socket

import pytest

from conftest import TINY_CLI_FLAGS, run_cli, tiny_lm_config
from ssl_jax import metrics, train, workdir
from ssl_jax.errors import ConfigError


def _main(path, *flags, corpus_dir, data_dir):
  return run_cli("ssl_jax.main", "--config", "configs/gpt_tiny.py", "--workdir", path,
                 f"--config.data.source={corpus_dir}/*.py", f"--config.data.data_dir={data_dir}",
                 *TINY_CLI_FLAGS, *flags)


def _snapshot(path):
  """Every file under path with its bytes and modification time."""
  out = {}
  for root, _, names in os.walk(path):
    for name in names:
      full = os.path.join(root, name)
      with open(full, "rb") as f:
        out[os.path.relpath(full, path)] = (f.read(), os.stat(full).st_mtime_ns)
  return out


@pytest.fixture
def locked(tmp_path):
  """A workdir locked by this process (as a running trainer would), released afterwards."""
  path = str(tmp_path / "run")
  workdir.lock(path)
  yield path
  workdir.release(path)


def _row(step, split="train", **values):
  return json.dumps({"step": step, "split": split, "loss": 1.0, **values}) + "\n"


# The lock.

def test_second_trainer_is_refused_and_changes_nothing(locked, corpus_dir, data_dir):
  with open(os.path.join(locked, "metrics.jsonl"), "w") as f:
    f.write(_row(2) + _row(4))  # the rows the running trainer has written so far
  before = _snapshot(locked)
  out = _main(locked, corpus_dir=corpus_dir, data_dir=data_dir)
  assert out.returncode == 2, out.stderr[-2000:]
  assert f"in use by another trainer (host {socket.gethostname()}, pid {os.getpid()}" in out.stderr
  assert "Traceback" not in out.stderr
  assert _snapshot(locked) == before  # no run.json, no checkpoint, no row written twice
  steps = [(r["step"], r["split"]) for r in metrics.read_metrics(locked)]
  assert steps == [(2, "train"), (4, "train")]


def test_lock_is_released_with_its_holder_and_names_it(tmp_path):
  path = str(tmp_path / "run")
  workdir.lock(path)
  holder = json.load(open(os.path.join(path, workdir.LOCK_FILE)))
  assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
  workdir.lock(path)  # the holder itself may claim it again (several trainings, one process)
  workdir.release(path)
  workdir.lock(path)  # free again
  workdir.release(path)


def test_only_process_0_locks(tmp_path, monkeypatch):
  with open(tmp_path / workdir.LOCK_FILE, "w") as held:
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as process 0 of the same run would
    with pytest.raises(ConfigError, match="in use by another trainer"):
      workdir.lock(str(tmp_path))
    monkeypatch.setattr(workdir.jax, "process_index", lambda: 1)
    # Process 1 neither locks nor writes run.json, and is not refused.
    workdir.claim(str(tmp_path), None, {}, allow_change=False)
  assert not os.path.exists(tmp_path / "run.json")


def test_filesystem_without_locks_warns_and_goes_on(tmp_path, monkeypatch):
  def no_locks(fd, op):
    raise OSError(errno.ENOLCK, "No locks available")
  monkeypatch.setattr(workdir.fcntl, "flock", no_locks)
  logged = []
  workdir.lock(str(tmp_path / "run"), log=logged.append)
  assert "could not lock" in logged[0] and "No locks available" in logged[0]


# Damaged metrics.jsonl.

def test_writer_moves_a_half_written_row_aside(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text(_row(1) + _row(2) + '{"step": 3, "split": "tr')  # a crash mid-write
  writer = metrics.MetricWriter(str(tmp_path), repair=True)
  writer.write(3, "train", {"loss": 0.5})
  writer.close()
  lines = path.read_text().splitlines()
  assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]
  assert (tmp_path / "metrics.jsonl.partial").read_text() == '{"step": 3, "split": "tr\n'


def test_writer_keeps_a_whole_row_missing_only_its_newline(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text(_row(1) + _row(2).rstrip("\n"))
  metrics.MetricWriter(str(tmp_path), repair=True).close()
  assert path.read_text() == _row(1) + _row(2)
  assert not (tmp_path / "metrics.jsonl.partial").exists()


def test_appending_tool_starts_its_row_on_a_new_line(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text(_row(1) + '{"step": 2, "spl')
  writer = metrics.MetricWriter(str(tmp_path))  # e.g. evaluate: leaves the file as it is
  writer.write(2, "linear", {"top1": 0.9})
  writer.close()
  assert [(r["step"], r["split"]) for r in metrics.read_metrics(str(path))] == [
      (1, "train"), (2, "linear")]


def test_read_metrics_skips_damaged_lines(tmp_path, capsys):
  path = tmp_path / "metrics.jsonl"
  with open(path, "wb") as f:
    f.write(_row(1).encode())
    f.write(b'{"step": 2, "split": "tr' + _row(3).encode())  # a fragment glued to a row
    f.write(b"[1, 2]\n" + b'{"step": 4}\n' + b'{"step": "5", "split": "eval"}\n')
    f.write(b"\n" + b"\xff\xfe garbage\n" + _row(6, "eval").encode() + b"\0" * 12)
  rows = metrics.read_metrics(str(tmp_path))
  assert [(r["step"], r["split"]) for r in rows] == [(1, "train"), (6, "eval")]
  assert "skipped 6 damaged line(s)" in capsys.readouterr().err


def test_sweep_summarises_runs_with_damaged_metrics(tmp_path, monkeypatch):
  from absl import flags
  from ssl_jax import sweep

  def fake_train(config, path, overrides):
    os.makedirs(path)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
      f.write(_row(1, loss=2.0 + config.seed) + '{"step": 2, "spl' + _row(2, "eval", loss=1.5))
    return 0
  monkeypatch.setattr(train, "train", fake_train)
  flags.FLAGS.mark_as_parsed()
  monkeypatch.setattr(flags.FLAGS, "seeds", "0,1")
  try:
    assert sweep.run(tiny_lm_config("unused", "unused"), str(tmp_path), {}) == 0
  finally:
    flags.FLAGS.unparse_flags()
  summary = json.load(open(tmp_path / "sweep.json"))
  assert summary["final"]["train/loss"]["values"] == [2.0, 3.0]
  assert "eval/loss" not in summary["final"]  # the only eval row was glued to a fragment


# Damaged run.json.

def test_damaged_run_json_exits_2_with_a_way_out_that_works(corpus_dir, data_dir, tmp_path,
                                                             capsys):
  path = str(tmp_path / "run")
  cfg = tiny_lm_config(f"{corpus_dir}/*.py", data_dir)
  train.train(cfg, path)
  workdir.release(path)  # as if that trainer had exited
  shutil.rmtree(os.path.join(path, "checkpoints", "12"))  # so that the way out resumes at 6
  run_json = os.path.join(path, "run.json")
  with open(run_json, "r+b") as f:
    f.truncate(os.path.getsize(run_json) // 2)
  damaged = open(run_json, "rb").read()

  out = _main(path, corpus_dir=corpus_dir, data_dir=data_dir)
  assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
  assert "run.json is damaged: it is not valid JSON" in out.stderr
  assert "checkpoints are unaffected" in out.stderr and "--allow_config_change" in out.stderr
  assert open(run_json, "rb").read() == damaged

  train.train(cfg, path, allow_config_change=True)  # the way out
  assert "Resumed from the checkpoint at step 6" in capsys.readouterr().out
  assert open(run_json + ".unreadable", "rb").read() == damaged
  info = json.load(open(run_json))
  assert info["config"]["total_steps"] == 12 and info["config_changes"]
  assert sorted(os.listdir(os.path.join(path, "checkpoints"))) == ["12", "6"]
  workdir.release(path)


def test_empty_run_json_is_named_as_such(tmp_path):
  (tmp_path / "run.json").write_text("")
  with pytest.raises(ConfigError, match="run.json is damaged: it is empty"):
    workdir.record_config(str(tmp_path), None, {}, allow_change=False)


# A failed first start.

def test_failed_first_start_does_not_block_the_corrected_retry(corpus_dir, data_dir, tmp_path,
                                                               monkeypatch, capsys):
  path = str(tmp_path / "run")
  too_big = tiny_lm_config(f"{corpus_dir}/*.py", data_dir, batch_size=64)

  def out_of_memory(*args, **kwargs):
    def step(state, batch):
      raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory")
    return step
  with monkeypatch.context() as patch:
    patch.setattr(train, "make_train_step", out_of_memory)
    with pytest.raises(RuntimeError, match="Out of memory"):
      train.train(too_big, path)
  assert json.load(open(os.path.join(path, "run.json")))["config"]["batch_size"] == 64

  smaller = tiny_lm_config(f"{corpus_dir}/*.py", data_dir, total_steps=6)
  train.train(smaller, path)
  assert "No checkpoint in" in capsys.readouterr().out
  assert json.load(open(os.path.join(path, "run.json")))["config"]["batch_size"] == 8
  # Now that a checkpoint exists, a different config is refused again.
  with pytest.raises(ConfigError, match="batch_size: 8 -> 64"):
    train.train(tiny_lm_config(f"{corpus_dir}/*.py", data_dir, batch_size=64, total_steps=6), path)
  workdir.release(path)
