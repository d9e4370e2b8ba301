"""gs:// workdirs and data_dirs, against a local GCS emulator (tests/gcs_emulator.py).

Every command runs as a user would run it, in subprocesses whose Google Cloud clients
(gcsfs, tensorstore) are pointed at the emulator by their documented settings.
"""
import json
import os
import signal
import subprocess
import sys
import time

import chex
import numpy as np
import pytest

from conftest import REPO, TINY_CLI_FLAGS, run_cli
from gcs_emulator import client_env, free_port

BUCKET = "gs://test-bucket"
STEPS = 300  # long enough that a SIGTERM sent after step 12 lands mid-run
EVALS = list(range(12, STEPS + 1, 12))


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
  """The emulator, serving for this module; yields the clients' environment."""
  port = free_port()
  log = tmp_path_factory.mktemp("gcs") / "emulator.log"
  with open(log, "w") as err:  # a file, not a pipe: a full pipe would stall the server
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "tests", "gcs_emulator.py"),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=err, text=True)
  line = proc.stdout.readline()
  assert line.startswith("ready"), log.read_text()
  env = client_env(f"http://127.0.0.1:{port}")
  saved = {k: os.environ.get(k) for k in env}
  os.environ.update(env)  # for the checks made in this process
  import fsspec
  from ssl_jax import storage  # noqa: F401  (its fsspec settings, before any filesystem)
  fsspec.config.set_conf_env(fsspec.config.conf)
  fsspec.filesystem("gs").clear_instance_cache()
  try:
    yield env
  finally:
    proc.kill()
    proc.wait()
    for key, value in saved.items():
      if value is None:
        os.environ.pop(key, None)
      else:
        os.environ[key] = value


def _fs():
  import fsspec
  return fsspec.filesystem("gs")


def _rows(url):
  from ssl_jax.metrics import read_metrics
  return read_metrics(url)


def _without_timing(rows):
  return [{k: v for k, v in r.items() if not k.endswith("_per_s")} for r in rows]


def _flags(workdir, corpus_dir, data_dir, *more):
  return ["--config", "configs/gpt_tiny.py", "--workdir", workdir,
          f"--config.data.source={corpus_dir}/*.py", f"--config.data.data_dir={data_dir}",
          *TINY_CLI_FLAGS, f"--config.total_steps={STEPS}", "--config.log_every=1",
          "--config.checkpoint_every=1000", "--config.eval_every=12", *more]


@pytest.fixture(scope="module")
def straight(gcs, corpus_dir):
  """An uninterrupted run into a gs:// workdir, its dataset prepared into a gs:// data_dir."""
  workdir = f"{BUCKET}/straight"
  out = run_cli("ssl_jax.main", *_flags(workdir, corpus_dir, f"{BUCKET}/tfds"), env=gcs)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "uploading it to gs://test-bucket/tfds/local_text/" in out.stderr  # prepared once
  return workdir


def test_run_writes_everything_into_the_bucket(straight):
  fs = _fs()
  names = {p.rsplit("/", 1)[-1] for p in fs.ls(straight.removeprefix("gs://"))}
  assert names == {"checkpoints", "metrics.jsonl", "run.json", "tensorboard"}  # lease released
  assert fs.ls(f"{straight}/checkpoints") == [f"test-bucket/straight/checkpoints/{STEPS}"]
  assert json.loads(fs.cat(f"{straight}/run.json"))["config"]["total_steps"] == STEPS
  events = fs.ls(f"{straight}/tensorboard")
  assert len(events) == 1 and fs.size(events[0]) > 0
  rows = _rows(straight)
  assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, STEPS + 1))
  assert [r["step"] for r in rows if r["split"] == "eval"] == EVALS
  assert not os.path.exists(os.path.join(REPO, "gs:"))  # not a local folder named gs:


def test_sigterm_resume_is_bit_identical(gcs, straight, corpus_dir, tmp_path):
  from ssl_jax.checkpoint import load_latest
  workdir = f"{BUCKET}/preempted"
  flags = _flags(workdir, corpus_dir, f"{BUCKET}/tfds")
  env = {**os.environ, **gcs}
  env.pop("XLA_FLAGS", None)
  proc = subprocess.Popen([sys.executable, "-m", "ssl_jax.main", *flags], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while "step 12: eval" not in _read_some(tmp_path, workdir):
    assert proc.poll() is None and time.time() < deadline
    time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=180)
  assert proc.returncode == 75, err[-3000:]
  stopped = load_latest(workdir)[0]
  assert 12 <= stopped < STEPS
  again = run_cli("ssl_jax.main", *flags, env=gcs)
  assert again.returncode == 0, again.stderr[-3000:]
  assert f"Resumed from the checkpoint at step {stopped} in {workdir}" in again.stdout
  step, a, _ = load_latest(workdir)
  _, b, _ = load_latest(straight)
  assert step == STEPS
  chex.assert_trees_all_equal(a["params"], b["params"])  # bit for bit
  chex.assert_trees_all_equal(a["opt_state"], b["opt_state"])
  # Complete, never duplicated, and the same numbers as the uninterrupted run.
  assert _without_timing(_rows(workdir)) == _without_timing(_rows(straight))


def _read_some(tmp_path, workdir):
  """The eval rows uploaded so far, as text (the writer uploads at each evaluation)."""
  try:
    rows = _rows(workdir)
  except FileNotFoundError:
    return ""
  return " ".join(f"step {r['step']}: {r['split']}" for r in rows)


def test_resume_drops_rows_logged_after_the_checkpoint(gcs, straight, corpus_dir):
  """A run killed after its last checkpoint had logged more rows; the resumed run logs
  those steps again, so the stale ones must go (no duplicates in metrics.jsonl)."""
  fs = _fs()
  workdir = f"{BUCKET}/killed"
  fs.copy(f"{straight}/", f"{workdir}/", recursive=True)
  fs.rm(f"{workdir}/checkpoints/{STEPS}", recursive=True)
  # The preempted run's own checkpoint (before its resume reached STEPS) is the newest now:
  # the straight run's rows run past it.
  stopped = min(int(p.rsplit("/", 1)[-1]) for p in fs.ls(f"{BUCKET}/preempted/checkpoints"))
  assert stopped < STEPS
  fs.copy(f"{BUCKET}/preempted/checkpoints/{stopped}/", f"{workdir}/checkpoints/{stopped}/",
          recursive=True)
  assert fs.ls(f"{workdir}/checkpoints") == [f"test-bucket/killed/checkpoints/{stopped}"]
  out = run_cli("ssl_jax.main", *_flags(workdir, corpus_dir, f"{BUCKET}/tfds"), env=gcs)
  assert out.returncode == 0, out.stderr[-3000:]
  assert f"row(s) of {workdir}/metrics.jsonl logged after the checkpoint at step {stopped}" \
      in out.stderr
  keys = [(r["step"], r["split"]) for r in _rows(workdir)]
  assert len(keys) == len(set(keys)) == STEPS + len(EVALS)


def test_sample_evaluate_and_sweep_on_a_gs_workdir(gcs, straight, corpus_dir):
  out = run_cli("ssl_jax.sample", "--workdir", straight, "--prompt", "def ",
                "--max_new_tokens", "16", env=gcs)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.startswith("def ") and len(out.stdout) > len("def ")
  before = len(_rows(straight))
  out = run_cli("ssl_jax.evaluate", "--workdir", straight, "--protocol", "perplexity",
                "--data_source", f"{corpus_dir}/*.py", "--data_dir", f"{BUCKET}/tfds", env=gcs)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  rows = _rows(straight)
  assert len(rows) == before + 1 and rows[-1]["split"] == "perplexity"
  assert rows[-1]["loss"] == pytest.approx(result["loss"])
  sweep = f"{BUCKET}/sweep"
  out = run_cli("ssl_jax.sweep", *_flags(sweep, corpus_dir, f"{BUCKET}/tfds"), "--seeds", "0,1",
                "--config.total_steps=4", "--config.eval_every=4", env=gcs)
  assert out.returncode == 0, out.stderr[-3000:]
  summary = json.loads(_fs().cat(f"{sweep}/sweep.json"))
  assert summary["seeds"] == [0, 1]
  assert _fs().size(f"{sweep}/curves.png") > 1000
  finals = [_rows(f"{sweep}/seed_{s}")[-1]["loss"] for s in (0, 1)]
  assert finals[0] != finals[1]  # two seeds, two runs


def test_image_dataset_in_a_gs_data_dir(gcs, tmp_path):
  """The digits TFDS builder prepared into gs:// (once), then read from there."""
  # A one-block ViT: it compiles far faster than a ResNet-18.
  flags = ["--config", "configs/simclr_digits.py", "--config.data.data_dir", f"{BUCKET}/images",
           "--config.batch_size=16", "--config.model.name=vit", "--config.model.depth=1",
           "--config.model.width=8", "--config.model.num_heads=2", "--config.head.out_dim=8",
           "--config.eval_steps=1", "--config.total_steps=2", "--config.eval_every=2",
           "--config.checkpoint_every=2", "--config.log_every=1"]
  first = run_cli("ssl_jax.main", *flags, "--workdir", str(tmp_path / "a"), env=gcs)
  assert first.returncode == 0, first.stderr[-3000:]
  assert "uploading it to gs://test-bucket/images/digits/" in first.stderr
  assert _fs().exists("test-bucket/images/digits")
  second = run_cli("ssl_jax.main", *flags, "--workdir", str(tmp_path / "b"), env=gcs)
  assert second.returncode == 0, second.stderr[-3000:]
  assert "Preparing" not in second.stderr  # read from the bucket
  a, b = _rows(str(tmp_path / "a")), _rows(str(tmp_path / "b"))
  assert _without_timing(a) == _without_timing(b)


def test_two_processes_run_the_readme_pod_command_into_gs(gcs, corpus_dir):
  """The README's TPU pod command with a gs:// workdir, as 2 processes x 4 CPU devices."""
  workdir = f"{BUCKET}/pod"
  env = {**os.environ, **gcs, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
         "SSL_JAX_PORT": str(free_port())}
  cmd = ["bash", "launch/local.sh", "2", "--", sys.executable, "-m", "ssl_jax.main",
         "--config", "configs/gpt2_small.py", "--workdir", workdir,
         f"--config.data.source={corpus_dir}/*.py", f"--config.data.data_dir={BUCKET}/pod_tfds",
         "--config.data.tokenizer=bytes", "--config.data.vocab_size=256",
         "--config.model.dtype=float32", *TINY_CLI_FLAGS]
  out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stderr.count("uploading it to gs://") == 1  # process 0 prepared; the other waited
  info = json.loads(_fs().cat(f"{workdir}/run.json"))
  assert info["process_count"] == 2 and info["device_count"] == 8
  keys = [(r["step"], r["split"]) for r in _rows(workdir)]
  assert len(keys) == len(set(keys)) and (12, "eval") in keys  # one writer
  import jax
  from ssl_jax.checkpoint import load_latest
  step, state, _ = load_latest(workdir)  # written collectively, read here on one device
  assert step == 12 and all(np.isfinite(x).all() for x in jax.tree.leaves(state["params"]))
  # Again: both processes restore the same checkpoint (its checksums are verified
  # collectively) and find nothing left to do.
  env["SSL_JAX_PORT"] = str(free_port())
  again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert again.stdout.count("Resumed from the checkpoint at step 12 in gs://test-bucket/pod") == 1
  assert "nothing to do" in again.stdout


@pytest.mark.parametrize("workdir,env_change,message", [
    ("s3://bucket/run", {}, "s3:// is not a supported storage scheme"),
    ("memory://run", {}, "memory:// is not a supported storage scheme"),
    ("gs://no-such-bucket/run", {}, "the bucket gs://no-such-bucket does not exist"),
    ("gs://readonly-bucket/run", {}, "the bucket is read-only for this account"),
    ("gs://test-bucket/run", {"FSSPEC_GS_TOKEN": None,
                              "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/key.json"},
     "no Google Cloud credentials were found"),
])
def test_bad_storage_exits_2_and_writes_nothing(gcs, corpus_dir, workdir, env_change, message):
  env = {**gcs, **{k: v for k, v in env_change.items() if v is not None}}
  full = {**os.environ, **env}
  for key in (k for k, v in env_change.items() if v is None):
    full.pop(key, None)
  full.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, "-m", "ssl_jax.main", "--config", "configs/gpt_tiny.py",
                        "--workdir", workdir, f"--config.data.source={corpus_dir}/*.py",
                        *TINY_CLI_FLAGS], cwd=REPO, env=full, capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 2, out.stderr[-3000:]
  assert message in out.stderr and "Traceback" not in out.stderr
  assert not _fs().exists("test-bucket/run")


def test_missing_data_bucket_exits_2(gcs, corpus_dir, tmp_path):
  out = run_cli("ssl_jax.main", *_flags(str(tmp_path / "run"), corpus_dir,
                                        "gs://no-such-bucket/tfds"), env=gcs)
  assert out.returncode == 2, out.stderr[-3000:]
  assert "data.data_dir=gs://no-such-bucket/tfds: the bucket gs://no-such-bucket does not " \
         "exist" in out.stderr


def test_lease_refuses_a_live_trainer_and_takes_over_a_stale_one(gcs):
  from ssl_jax import object_lock
  from ssl_jax.errors import ConfigError
  url = f"{BUCKET}/leased/.lock"
  fs = _fs()
  other = {"host": "elsewhere", "pid": 4242, "since": "2026-01-01T00:00:00"}
  fs.pipe_file(url, json.dumps({**other, "renewed": time.time()}).encode())
  with pytest.raises(ConfigError, match="in use by another trainer .host elsewhere, pid 4242"):
    object_lock.acquire(url)
  assert json.loads(fs.cat_file(url))["pid"] == 4242  # a refused trainer changes nothing
  stale = time.time() - object_lock.LEASE_SECS - 1
  fs.pipe_file(url, json.dumps({**other, "renewed": stale}).encode())
  warnings = []
  object_lock.acquire(url, log=warnings.append, renew_secs=0.2)
  assert "taking over the stale lease" in warnings[0]
  claimed = json.loads(fs.cat_file(url))
  assert claimed["pid"] == os.getpid()
  time.sleep(1.5)
  assert json.loads(fs.cat_file(url))["renewed"] > claimed["renewed"]  # kept alive
  object_lock.release(url)
  assert not fs.exists(url)


def test_a_second_trainer_on_a_leased_gs_workdir_exits_2(gcs, corpus_dir):
  fs = _fs()
  workdir = f"{BUCKET}/busy"
  fs.pipe_file(f"{workdir}/.lock", json.dumps(
      {"host": "elsewhere", "pid": 4242, "since": "now", "renewed": time.time()}).encode())
  out = run_cli("ssl_jax.main", *_flags(workdir, corpus_dir, f"{BUCKET}/tfds"), env=gcs)
  assert out.returncode == 2, out.stderr[-3000:]
  assert "is in use by another trainer (host elsewhere, pid 4242" in out.stderr
  assert not fs.exists(f"{workdir}/run.json")
