"""Evaluation at scale and on other data: sharded and streamed feature extraction, the SGD
linear probe, package trees as text tasks, and the --dataset forms."""
import os
import subprocess
import sys
import tempfile

import jax
import numpy as np
import pytest

from conftest import REPO, free_port, make_package_tree
from extract_worker import BATCH, encoder_and_inputs
from ssl_jax.data import stdlib_packages
from ssl_jax.errors import ConfigError, DataError
from ssl_jax.evaluate import datasets, linear_sgd
from ssl_jax.evaluate.transfer import extract


@pytest.fixture(scope="module")
def reference():
  """The encoder, its inputs, and their features extracted on one device and on all 8."""
  encoder, images = encoder_and_inputs()
  return (encoder, images, extract(encoder, images, BATCH, devices=jax.devices()[:1]),
          extract(encoder, images, BATCH))


def assert_close(features, one_device):
  """Within 1e-6: XLA picks a matmul kernel by the per-device shape (2 rows per device
  here, 16 on one device), and kernels block and fuse the sum over the contracted axis
  differently, so the last bit or two can differ. No reduction runs across examples."""
  assert features.shape == one_device.shape
  np.testing.assert_allclose(features, one_device, rtol=0, atol=1e-6)


def test_extraction_over_8_devices_matches_one_device(reference, tmp_path, monkeypatch):
  encoder, images, one_device, eight_devices = reference
  assert jax.device_count() == 8 and one_device.shape == (len(images), 16)
  assert_close(eight_devices, one_device)
  assert_close(extract(encoder, images, 3), one_device)  # 3 rounded up to 8
  # Above the memory threshold the features go to a file in $TMPDIR, unlinked at once:
  # the same numbers, and nothing left behind.
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
  on_disk = extract(encoder, images, BATCH, memory_mb=1e-3)
  assert isinstance(on_disk, np.memmap) and os.listdir(tmp_path) == []
  np.testing.assert_array_equal(on_disk, eight_devices)
  assert not isinstance(extract(encoder, images, BATCH, memory_mb=1.0), np.memmap)


def test_extraction_across_two_processes_matches(reference, tmp_path):
  """2 processes x 4 CPU devices joined by jax.distributed: each process reads its own rows
  and every process gets all features in input order, in memory and on disk alike. With the
  same per-device shapes as the 8 devices of one process, they are bit for bit the same."""
  port = free_port()
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  worker = os.path.join(REPO, "tests", "extract_worker.py")
  procs = [subprocess.Popen([sys.executable, worker, str(i), "2", str(port), str(tmp_path)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for i in range(2)]
  try:
    outs = [p.communicate(timeout=180) for p in procs]
  finally:
    for p in procs:
      p.kill()  # SIGKILL: a process blocked in a collective ignores SIGTERM
  _, _, one_device, eight_devices = reference
  for i, (p, (_, err)) in enumerate(zip(procs, outs)):
    assert p.returncode == 0, err[-3000:]
    got = np.load(tmp_path / f"process{i}.npz")
    assert int(got["devices"]) == 8 and bool(got["disk_backed"])
    np.testing.assert_array_equal(got["in_memory"], eight_devices)
    np.testing.assert_array_equal(got["on_disk"], eight_devices)
    assert_close(got["in_memory"], one_device)


def _digits():
  from sklearn.datasets import load_digits
  digits = load_digits()
  x, y = digits.data.astype(np.float32), digits.target
  return x[:1400], y[:1400], x[1400:], y[1400:]


def test_linear_sgd_learns_and_is_deterministic(tmp_path, monkeypatch):
  train_x, train_y, test_x, test_y = _digits()
  result = linear_sgd.probe(train_x, train_y, test_x, test_y, 10, epochs=20, batch_size=128)
  assert result["top1"] > 0.85 and result["top5"] >= result["top1"]  # chance: 0.1
  assert result["train_loss"] < 0.3
  assert linear_sgd.probe(train_x, train_y, test_x, test_y, 10, epochs=20,
                          batch_size=128) == result
  assert linear_sgd.probe(train_x, train_y, test_x, test_y, 10, epochs=20, batch_size=128,
                          seed=1)["train_loss"] != result["train_loss"]
  # Features in a file-backed array give the same probe, batch by batch.
  from ssl_jax.evaluate.transfer import disk_array
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
  on_disk = disk_array(train_x.shape)
  on_disk[:] = train_x
  assert linear_sgd.probe(on_disk, train_y, test_x, test_y, 10, epochs=20,
                          batch_size=128) == result
  # Labels unrelated to the features: chance, and no top-5 with 5 classes or fewer.
  shuffled = np.random.default_rng(0).permutation(train_y) % 5
  noise = linear_sgd.probe(train_x, shuffled, test_x, test_y % 5, 5, epochs=5)
  assert noise["top1"] < 0.4 and "top5" not in noise


def test_package_tree_task_is_keyed_by_folder(package_tree, tmp_path):
  train, test, names = stdlib_packages.load_tree(str(tmp_path / "tfds"), package_tree)
  assert names == ["geometry", "netio", "textproc"]
  text = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731
  rows = {s: [(text(d[i]["path"]), int(d[i]["label"])) for i in range(len(d))]
          for s, d in (("train", train), ("test", test))}
  assert {p for p, _ in rows["train"]}.isdisjoint(p for p, _ in rows["test"])
  assert all(p.split(os.sep)[0] == names[label] for p, label in rows["train"] + rows["test"])
  assert np.bincount([label for _, label in rows["test"]], minlength=3).min() > 0
  # Another tree with the same package names gets a dataset of its own.
  other = make_package_tree(str(tmp_path / "other"), seed=1)
  stdlib_packages.load_tree(str(tmp_path / "tfds"), other)
  assert len(os.listdir(tmp_path / "tfds" / "python_packages")) == 2
  with pytest.raises(DataError, match="not a folder"):
    stdlib_packages.load_tree(str(tmp_path / "tfds"), str(tmp_path / "missing"))
  with pytest.raises(DataError, match="needs at least 2"):
    stdlib_packages.load_tree(str(tmp_path / "tfds"), os.path.join(package_tree, "netio"))


@pytest.mark.parametrize("spec", ["cifar10", "stdlib:x", "packages:", "images: ", "tfds:",
                                  "tfds:../x", "tfds:image_folder", "images:gs://b/x"])
def test_malformed_dataset_specs_name_the_forms(spec):
  with pytest.raises(ConfigError, match="stdlib or packages:DIR" if "gs:" not in spec
                     else "local"):
    datasets.parse(spec)


def test_dataset_spec_must_suit_the_encoder():
  assert datasets.parse("") == datasets.Spec()
  assert datasets.for_modality("packages:/x", "text") == datasets.Spec("packages", "/x")
  assert datasets.for_modality("tfds:cifar10", "image") == datasets.Spec("tfds", "cifar10")
  with pytest.raises(ConfigError, match="for text encoders.*images:DIR or tfds:NAME"):
    datasets.for_modality("stdlib", "image")
  with pytest.raises(ConfigError, match="for image encoders.*stdlib or packages:DIR"):
    datasets.for_modality("images:/x", "text")


@pytest.mark.parametrize("change,message", [
    ({"probe_epochs": 0}, "--probe_epochs must be positive"),
    ({"probe_batch_size": -1}, "--probe_batch_size must be positive"),
    ({"probe_lr": float("nan")}, "--probe_lr must be positive"),
    ({"feature_memory_mb": -1.0}, "--feature_memory_mb must be 0"),
])
def test_probe_and_memory_flags_are_checked(change, message):
  import dataclasses
  from ssl_jax import evaluate
  # From the package, not evaluate/__main__.py, whose flags would clash with main's here.
  assert evaluate.options_error(evaluate.Options()) is None
  assert evaluate.options_error(
      dataclasses.replace(evaluate.Options(), **change)).startswith(message)
