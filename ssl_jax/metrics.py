"""Metric sinks: DIR/metrics.jsonl (the contract) and TensorBoard event files (tensorboardX)."""
import json
import os

import numpy as np


class MetricWriter:
  """Writes only on process 0; other processes get a writer that drops everything."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    if enabled:
      import tensorboardX
      self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
      self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, split: str, metrics: dict):
    if not self.enabled:
      return
    values = {k: float(np.asarray(v)) for k, v in metrics.items()}
    self._jsonl.write(json.dumps({"step": int(step), "split": split, **values}) + "\n")
    self._jsonl.flush()
    for k, v in values.items():
      self._tb.add_scalar(f"{split}/{k}", v, int(step))

  def close(self):
    if self.enabled:
      self._jsonl.close()
      self._tb.close()
