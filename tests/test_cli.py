"""The command line: bad input exits with the documented codes; train, resume, sample."""
import json
import os

import pytest

from conftest import TINY_CLI_FLAGS, run_cli
from ssl_jax import hugepages


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
