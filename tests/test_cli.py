"""The command line: bad input exits with the documented codes; train, resume, sample."""
import errno
import json
import os

import pytest

from conftest import REPO, TINY_CLI_FLAGS, run_cli
from ssl_jax import bootstrap, host, hugepages
from ssl_jax.models import layers
from ssl_jax.errors import ConfigError, DataError, Diverged, Preempted


def _main(workdir, *flags, source, data_dir, env=None):
  return run_cli("ssl_jax.main", "--config", "configs/gpt_tiny.py", "--workdir", workdir,
                 f"--config.data.source={source}", f"--config.data.data_dir={data_dir}",
                 *TINY_CLI_FLAGS, *flags, env=env)


@pytest.mark.parametrize("flags,code,message", [
    (["--config.modle.width=3"], 2, "modle"),
    (["--config.warmup_steps=3"], 2, "did you mean --config.optim.warmup_steps?"),
    (["--config.model.width=wide"], 2, "width"),
    (["--config.data.seq_len=64"], 2, "max_len"),
    (["--config.batch_size=0"], 2, "batch_size"),
    (["--config.eval_steps=0", "--config.keep_checkpoints=0", "--config.model.dtype=foo"], 2,
     "eval_steps must be a positive integer; got 0. keep_checkpoints must be at least 1; got 0. "
     "model.dtype must be one of float32, bfloat16; got 'foo'."),
    (["--config.data.source="], 2, "data.source must name a glob of text files"),
])
def test_bad_config_exits_2_and_leaves_no_workdir(flags, code, message, corpus_dir, data_dir,
                                                  tmp_path):
  workdir = str(tmp_path / "w")
  out = _main(workdir, *flags, source=f"{corpus_dir}/*.py", data_dir=data_dir)
  assert out.returncode == code, out.stderr[-2000:]
  assert message in out.stderr and "Traceback" not in out.stderr
  assert not os.path.exists(workdir)


def test_batch_not_divisible_by_devices_exits_2(corpus_dir, data_dir, tmp_path):
  workdir = str(tmp_path / "w")
  out = _main(workdir, "--config.batch_size=12", source=f"{corpus_dir}/*.py", data_dir=data_dir,
              env={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
  assert out.returncode == 2 and "divisible by the 8 devices" in out.stderr
  assert not os.path.exists(workdir)


def test_missing_corpus_exits_3(tmp_path, data_dir):
  workdir = str(tmp_path / "w")
  out = _main(workdir, source=str(tmp_path / "none/*.txt"), data_dir=data_dir)
  assert out.returncode == 3 and "matched 0 file" in out.stderr
  assert not os.path.exists(workdir)


@pytest.mark.parametrize("text,error", [
    ("def get_config(:\n", "SyntaxError: invalid syntax"),
    ("def get_config():\n  raise ValueError('no preset b9')\n", "ValueError: no preset b9"),
    ("import not_a_module_xyz\n", "ModuleNotFoundError: No module named 'not_a_module_xyz'"),
])
def test_broken_config_file_exits_2_naming_it(tmp_path, text, error):
  path = tmp_path / "broken.py"
  path.write_text(text)
  workdir = str(tmp_path / "w")
  out = run_cli("ssl_jax.main", "--config", str(path), "--workdir", workdir)
  assert out.returncode == 2, out.stderr[-2000:]
  assert f"could not load --config {path}" in out.stderr and error in out.stderr
  assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1
  assert not os.path.exists(workdir)


@pytest.mark.parametrize("where", ["file", "under_a_file"])
def test_unusable_workdir_exits_2_before_preparing_data(corpus_dir, tmp_path, where):
  (tmp_path / "taken").write_text("not a directory")
  workdir = str(tmp_path / "taken" / ("run" if where == "under_a_file" else ""))
  fresh_data_dir = str(tmp_path / "tfds")
  out = _main(workdir.rstrip("/"), source=f"{corpus_dir}/*.py", data_dir=fresh_data_dir)
  assert out.returncode == 2, out.stderr[-2000:]
  assert "is a file, not a directory" in out.stderr and "Traceback" not in out.stderr
  assert not os.path.exists(fresh_data_dir)  # refused before data preparation started


@pytest.mark.parametrize("raw", ["café crème\n".encode("latin-1"), b""], ids=["latin-1", "empty"])
def test_corpus_without_text_exits_3(tmp_path, raw):
  for i in range(3):
    (tmp_path / f"{i}.txt").write_bytes(raw)
  workdir = str(tmp_path / "w")
  out = _main(workdir, source=str(tmp_path / "*.txt"), data_dir=str(tmp_path / "tfds"))
  assert out.returncode == 3, out.stderr[-2000:]
  assert "has 0 usable file(s) of 3" in out.stderr and "Traceback" not in out.stderr
  assert not os.path.exists(workdir)


def _main_patched(tmp_path, patch: str, *flags, source, data_dir):
  """ssl_jax.main in a subprocess after running `patch` (Python source) in it."""
  import subprocess
  import sys
  driver = tmp_path / "driver.py"
  driver.write_text(
      "from ssl_jax import bootstrap, main\n" + patch +
      '\nbootstrap.start("ssl_jax.main", main.main, main.USAGE)\n')
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  return subprocess.run(
      [sys.executable, str(driver), "--config", "configs/gpt_tiny.py", "--workdir",
       str(tmp_path / "w"), f"--config.data.source={source}", f"--config.data.data_dir={data_dir}",
       *TINY_CLI_FLAGS, *flags], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_out_of_memory_exits_2_with_one_message(corpus_dir, data_dir, tmp_path):
  # The step raises the error XLA raises for an allocation that cannot succeed.
  patch = """
import jax, jax.numpy as jnp
from ssl_jax import train
try:
  jax.jit(lambda: jnp.zeros((2 ** 40,), jnp.float32))().block_until_ready()
except jax.errors.JaxRuntimeError as e:
  oom = e
def make_train_step(*args, **kwargs):
  def step(state, batch):
    raise oom
  return step
train.make_train_step = make_train_step
"""
  out = _main_patched(tmp_path, patch, source=f"{corpus_dir}/*.py", data_dir=data_dir)
  assert out.returncode == 2, out.stderr[-3000:]
  assert "error: batch_size=8 does not fit in memory on cpu; lower batch_size or raise " \
         "grad_accum" in out.stderr
  assert "Traceback" not in out.stderr


def test_disk_full_during_save_exits_74_with_one_message(corpus_dir, data_dir, tmp_path):
  patch = """
import errno, os
from ssl_jax import checkpoint
def save(self, step, *args, **kwargs):
  raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"checkpoints/{step}")
checkpoint.Checkpointer.save = save
"""
  out = _main_patched(tmp_path, patch, "--config.total_steps=2", "--config.checkpoint_every=1",
                      "--config.eval_every=2", source=f"{corpus_dir}/*.py", data_dir=data_dir)
  assert out.returncode == 74, out.stderr[-3000:]
  errors = [line for line in out.stderr.splitlines() if line.startswith("error")]
  assert len(errors) == 1 and errors[0].startswith(f"error: storage: the disk holding {tmp_path}")
  assert "No space left on device" in errors[0] and "already on disk are intact" in errors[0]
  assert "Traceback" not in out.stderr


@pytest.mark.parametrize("module,args,message", [
    ("ssl_jax.sample", ["--prompt", "a"], "--workdir is required"),
    ("ssl_jax.sample", ["--workdir", "{w}", "--bogus=1"], "Unknown command line flag 'bogus'"),
    ("ssl_jax.evaluate", ["--workdir", "{w}", "--protocol", "linear",
                          "--max_train_examples=-1"], "--max_train_examples must be 0"),
    ("ssl_jax.sweep", ["--config", "configs/gpt_tiny.py", "--workdir", "{w}", "--seeds", "a,b"],
     "--seeds must be comma-separated integers"),
    ("ssl_jax.augment_grid", ["--config", "configs/gpt_tiny.py", "--out", "{w}.png"],
     "use an image config"),
    ("ssl_jax.augment_grid", ["--config", "configs/simclr_digits.py", "--out", "{w}.png",
                                   "--num_images=0"], "--num_images and --num_views must be"),
])
def test_tool_usage_errors_exit_2(tmp_path, module, args, message):
  workdir = str(tmp_path / "w")
  out = run_cli(module, *[a.format(w=workdir) for a in args])
  assert out.returncode == 2, out.stderr[-2000:]
  assert message in out.stderr and "Traceback" not in out.stderr
  assert not os.path.exists(workdir)


def test_train_resume_and_sample(corpus_dir, data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  out = _main(workdir, source=f"{corpus_dir}/*.py", data_dir=data_dir)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "--- sample ---" in out.stdout
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert {r["split"] for r in rows} == {"train", "eval"}
  assert all(isinstance(r["step"], int) for r in rows)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["12", "6"]
  info = json.load(open(os.path.join(workdir, "run.json")))
  assert info["overrides"]["total_steps"] == 12 and info["process_count"] == 1
  assert info["versions"]["jax"] and "git_commit" in info
  clean_env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  if hugepages.wanted(clean_env):  # the entry point re-executed itself with the tunable
    assert hugepages.TUNABLE in info["GLIBC_TUNABLES"].split(":")
  # The per-host XLA:CPU options (models/layers.py) were set before the backend started.
  assert info["cpu"] == host.describe()  # the hardware a bit-exact rerun needs
  for flag in layers.xla_cpu_flags(info["cpu"]["flags"]):
    assert flag in info["XLA_FLAGS"].split()

  again = _main(workdir, source=f"{corpus_dir}/*.py", data_dir=data_dir)
  assert again.returncode == 0 and "nothing to do" in again.stdout

  refused = _main(workdir, "--config.total_steps=14", source=f"{corpus_dir}/*.py",
                  data_dir=data_dir)
  assert refused.returncode == 2 and "total_steps: 12 -> 14" in refused.stderr
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["12", "6"]
  longer = _main(workdir, "--config.total_steps=14", "--allow_config_change",
                 source=f"{corpus_dir}/*.py", data_dir=data_dir)
  assert longer.returncode == 0 and "Resumed from the checkpoint at step 12" in longer.stdout
  info = json.load(open(os.path.join(workdir, "run.json")))
  assert info["config"]["total_steps"] == 14 and info["config_changes"]

  kw = ("--workdir", workdir, "--prompt", "def ", "--max_new_tokens", "10", "--seed", "3")
  s1, s2 = run_cli("ssl_jax.sample", *kw), run_cli("ssl_jax.sample", *kw)
  assert s1.returncode == 0, s1.stderr[-2000:]
  assert s1.stdout.startswith("def ") and s1.stdout == s2.stdout
  greedy = [run_cli("ssl_jax.sample", "--workdir", workdir, "--prompt", "x", "--temperature", "0",
                    "--max_new_tokens", "5", "--seed", seed) for seed in ("1", "2")]
  assert greedy[0].returncode == 0 and greedy[0].stdout == greedy[1].stdout


def test_sample_without_checkpoint_exits_2(tmp_path):
  out = run_cli("ssl_jax.sample", "--workdir", str(tmp_path), "--prompt", "a")
  assert out.returncode == 2 and "No checkpoints" in out.stderr


def test_hugepages_reexec_once_keeping_other_tunables():
  import subprocess
  import sys
  assert not hugepages.wanted({"SSL_JAX_HUGEPAGES": "0"})
  assert not hugepages.wanted({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})
  env = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.arena_max=2")
  code = ("import os; from ssl_jax import hugepages; hugepages.reexec_if_wanted(); "
          "print(os.environ['GLIBC_TUNABLES'])")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=60)
  assert out.returncode == 0, out.stderr
  expected = "glibc.malloc.arena_max=2"
  if hugepages.wanted({k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}):
    expected += ":glibc.malloc.hugetlb=1"
  assert out.stdout == expected + "\n"  # one line: the re-executed process did not exec again


@pytest.mark.parametrize("error,code,message", [
    (ConfigError("batch_size must be positive."), 2, "error: batch_size must be positive.\n"),
    (DataError("no files; prepare them."), 3, "error: data: no files; prepare them.\n"),
    (Diverged("Non-finite loss at step 7."), 4,
     "error: training diverged: Non-finite loss at step 7.\n"),
    (Preempted("checkpoint at step 5 written"), 75, ""),  # the loop has said so on stdout
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), 74,
     "error: storage: the disk holding WORKDIR is full (No space left on device); "),
])
def test_errors_map_to_the_documented_exit_codes(error, code, message, capsys):
  assert bootstrap.exit_code(error, workdir="WORKDIR") == code
  err = capsys.readouterr().err
  assert err.startswith(message) if message else err == ""


def test_errors_without_an_exit_code_keep_their_traceback():
  with pytest.raises(KeyError):
    bootstrap.exit_code(KeyError("a bug"), workdir="WORKDIR")
  with pytest.raises(OSError):  # a command that names no workdir does not write one
    bootstrap.exit_code(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))


@pytest.mark.parametrize("module,reexecs", [
    ("ssl_jax.main", True), ("ssl_jax.sweep", True), ("ssl_jax.evaluate", True),
    ("ssl_jax.sample", False), ("ssl_jax.augment_grid", False)])
def test_which_commands_reexec_for_huge_pages(module, reexecs):
  """The commands that train or evaluate re-exec with 2 MiB pages; the short tools do not."""
  import subprocess
  import sys
  code = ("import runpy, sys\nfrom ssl_jax import hugepages\n"
          "hugepages.reexec_if_wanted = lambda: sys.exit('would re-exec')\n"
          f"sys.argv = [{module!r}]\nrunpy.run_module({module!r}, run_name='__main__')\n")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
  if reexecs:
    assert out.returncode == 1 and out.stderr == "would re-exec\n", out.stderr[-2000:]
  else:  # it went on to its usage check: no arguments given
    assert out.returncode == 2 and "required" in out.stderr, out.stderr[-2000:]


@pytest.mark.parametrize("module,args", [
    ("ssl_jax.main", ["--config", "configs/gpt_tiny.py", "--workdir", "s3://bucket/run"]),
    ("ssl_jax.main", ["--config", "configs/gpt_tiny.py", "--workdir", "WORKDIR",
                      "--config.data.data_dir=s3://bucket/tfds"]),
    ("ssl_jax.sample", ["--workdir", "s3://bucket/run", "--prompt", "a", "--max_new_tokens", "3"]),
    ("ssl_jax.evaluate", ["--workdir", "s3://bucket/run", "--protocol", "perplexity"]),
    ("ssl_jax.evaluate", ["--workdir", "WORKDIR", "--protocol", "perplexity",
                          "--data_dir", "s3://bucket/tfds"]),
])
def test_unsupported_storage_urls_are_refused_not_turned_into_local_folders(module, args,
                                                                            tmp_path):
  """Only gs:// is supported (tests/test_object_storage.py); s3://bucket/run must neither
  work half-way nor become ./s3:/bucket/run."""
  args = [str(tmp_path / "w") if a == "WORKDIR" else a for a in args]
  out = run_cli(module, *args)
  assert out.returncode == 2, out.stderr[-2000:]
  assert "s3:// is not a supported storage scheme" in out.stderr and "Traceback" not in out.stderr
  assert not os.path.exists(os.path.join(REPO, "s3:")) and not os.path.exists(tmp_path / "w")
