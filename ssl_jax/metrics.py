"""Metric sinks: DIR/metrics.jsonl (the contract) and TensorBoard event files (tensorboardX).

read_metrics is the one reader of metrics.jsonl: it skips damaged lines.
"""
import json
import os
import sys

import numpy as np

_CHUNK = 1 << 16


class MetricWriter:
  """Writes only on process 0; other processes get a writer that drops everything.

  A crash mid-write can leave metrics.jsonl ending in half a row. With repair (the
  trainer, which holds the workdir lock) that fragment is moved to metrics.jsonl.partial
  and the file keeps its complete rows; without (tools appending beside a possibly
  running trainer) the new rows just start on a line of their own.
  """

  def __init__(self, workdir: str, enabled: bool = True, repair: bool = False):
    self.enabled = enabled
    if enabled:
      import tensorboardX
      path = os.path.join(workdir, "metrics.jsonl")
      if repair:
        move_partial_line(path)
      complete = ends_with_newline(path)
      self._jsonl = open(path, "a")
      if not complete:
        self._jsonl.write("\n")  # goes out with the first row, in the same write
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


def ends_with_newline(path: str) -> bool:
  """True for a missing or empty file, or one whose last row is complete."""
  try:
    with open(path, "rb") as f:
      f.seek(0, os.SEEK_END)
      if f.tell() == 0:
        return True
      f.seek(-1, os.SEEK_END)
      return f.read(1) == b"\n"
  except FileNotFoundError:
    return True


def move_partial_line(path: str):
  """Moves a half-written last line of path to PATH.partial (appended to it).

  A last line that is a whole row, only missing its newline, gets the newline instead.
  The fragment is copied before the file is cut, so a crash in between duplicates it
  rather than losing it.
  """
  if ends_with_newline(path):
    return
  with open(path, "rb+") as f:
    cut, pos = 0, f.seek(0, os.SEEK_END)
    while pos > 0:  # find the last newline, reading backwards a chunk at a time
      start = max(0, pos - _CHUNK)
      f.seek(start)
      newline = f.read(pos - start).rfind(b"\n")
      if newline >= 0:
        cut = start + newline + 1
        break
      pos = start
    f.seek(cut)
    fragment = f.read()
    if _parse_row(fragment.decode("utf-8", "replace")) is not None:
      f.write(b"\n")
      return
    with open(path + ".partial", "ab") as aside:
      aside.write(fragment + b"\n")
      aside.flush()
      os.fsync(aside.fileno())
    f.truncate(cut)
  print(f"WARNING: {path} ended in a half-written row ({len(fragment)} bytes, from an "
        f"interrupted write); moved it to {path}.partial.", file=sys.stderr)


def read_metrics(path: str) -> list[dict]:
  """The rows of a metrics.jsonl (path, or a workdir holding one), in file order.

  A row is a line holding a JSON object with an int `step` and a str `split`; any other
  line (half a row from a crash, rows glued together, stray bytes) is skipped with a
  warning on stderr.
  """
  if os.path.isdir(path):
    path = os.path.join(path, "metrics.jsonl")
  rows, skipped = [], 0
  with open(path, encoding="utf-8", errors="replace") as f:
    for line in f:
      row = _parse_row(line)
      if row is not None:
        rows.append(row)
      elif line.strip():
        skipped += 1
  if skipped:
    print(f"WARNING: skipped {skipped} damaged line(s) of {path}.", file=sys.stderr)
  return rows


def _parse_row(line: str) -> dict | None:
  try:
    row = json.loads(line)
  except ValueError:
    return None
  if not isinstance(row, dict) or not isinstance(row.get("split"), str):
    return None
  step = row.get("step")
  return row if isinstance(step, int) and not isinstance(step, bool) else None
