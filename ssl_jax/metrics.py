"""Metric sinks: DIR/metrics.jsonl (the contract) and TensorBoard event files (tensorboardX).

read_metrics is the one reader of metrics.jsonl: it skips damaged lines.
"""
import json
import os
import sys
import time

import numpy as np

from ssl_jax import storage

_CHUNK = 1 << 16


class MetricWriter:
  """Writes only on process 0; other processes get a writer that drops everything.

  A crash mid-write can leave metrics.jsonl ending in half a row. With repair (the
  trainer, which holds the workdir lock) that fragment is moved to metrics.jsonl.partial
  and the file keeps its complete rows; without (tools appending beside a possibly
  running trainer) the new rows just start on a line of their own.

  resume_step (the trainer): train and eval rows after it were logged by a run that
  stopped before its next checkpoint; the resumed run logs them again, so they go first.

  On an object store (no append) rows are buffered and the whole object is rewritten with
  them: after an evaluation row, else at most every UPLOAD_SECS, and at flush() and close(). Rows lost in a crash were
  logged after the last checkpoint, so the resumed run writes them again.
  """

  UPLOAD_SECS = 30.0

  def __init__(self, workdir: str, enabled: bool = True, repair: bool = False,
               resume_step: int | None = None):
    self.enabled = enabled
    if not enabled:
      return
    self.path = storage.join(workdir, "metrics.jsonl")
    self._remote = storage.is_url(workdir)
    if not self._remote:
      storage.makedirs(workdir)
      if repair:
        move_partial_line(self.path)
    if resume_step is not None:
      drop_rows_after(self.path, resume_step)
    if self._remote:
      self._pending, self._uploaded_at = [], time.time()
    else:
      complete = ends_with_newline(self.path)
      self._jsonl = open(self.path, "a")
      if not complete:
        self._jsonl.write("\n")  # goes out with the first row, in the same write
    self._tb = tensorboard_writer(storage.join(workdir, "tensorboard"))

  def write(self, step: int, split: str, metrics: dict):
    if not self.enabled:
      return
    values = {k: _number(v) for k, v in metrics.items()}
    line = json.dumps({"step": int(step), "split": split, **values}) + "\n"
    if self._remote:
      self._pending.append(line)
      if split != "train" or time.time() - self._uploaded_at >= self.UPLOAD_SECS:
        self.flush()  # evaluations are rare and worth keeping at once
    else:
      self._jsonl.write(line)
      self._jsonl.flush()
    for k, v in values.items():
      if not isinstance(v, list):  # an interval [low, high] is no scalar
        self._tb.add_scalar(f"{split}/{k}", v, int(step))

  def flush(self):
    """Makes every row written so far durable (on an object store: one upload)."""
    if not self.enabled:
      return
    if self._remote and self._pending:
      _append_to_object(self.path, self._pending)
      self._pending = []
    self._uploaded_at = time.time()
    self._tb.flush()

  def close(self):
    if self.enabled:
      self.flush()
      if not self._remote:
        self._jsonl.close()
      self._tb.close()


def _number(value):
  """A float, or a list of floats for an interval such as NAME_ci95."""
  if isinstance(value, (list, tuple)):
    return [float(v) for v in value]
  return float(np.asarray(value))


def _append_to_object(path: str, lines: list[str]):
  """Read, extend, rewrite: an object store cannot append. Rows another writer added
  meanwhile are kept; two writers within the same instant may lose one's rows."""
  current = storage.read_bytes(path) if storage.exists(path) else b""
  if current and not current.endswith(b"\n"):
    current += b"\n"
  storage.write_atomic(path, current + "".join(lines).encode("utf-8"))


def drop_rows_after(path: str, step: int):
  """Removes train/eval rows logged after `step` (rows of evaluation protocols stay)."""
  if not storage.exists(path):
    return
  lines = storage.read_bytes(path).decode("utf-8", "replace").splitlines(keepends=True)
  kept = [line for line in lines if not _logged_after(line, step)]
  if len(kept) < len(lines):
    storage.write_atomic(path, "".join(kept))
    print(f"Dropped {len(lines) - len(kept)} row(s) of {path} logged after the checkpoint at "
          f"step {step}; the resumed run logs those steps again.", file=sys.stderr, flush=True)


def _logged_after(line: str, step: int) -> bool:
  row = _parse_row(line)
  return row is not None and row["split"] in ("train", "eval") and row["step"] > step


def tensorboard_writer(logdir: str):
  """tensorboardX's writer; on an object store its event file is uploaded whole at flushes."""
  import tensorboardX
  if storage.is_url(logdir):
    from tensorboardX import record_writer
    record_writer.register_writer_factory(logdir.split("://", 1)[0], _WholeObjectFactory())
  return tensorboardX.SummaryWriter(logdir)


class _WholeObjectFactory:
  """Event files on an object store: kept in memory and rewritten whole at each flush (the
  store cannot append). tensorboardX's own GCS writer retries for minutes at exit when
  the store is unreachable."""

  def open(self, path):
    return _WholeObject(path)

  def directory_check(self, path):
    pass  # object stores have no directories


class _WholeObject:

  def __init__(self, path):
    self.path, self.data, self.dirty = path, bytearray(), False

  def write(self, data):
    self.data += data
    self.dirty = True

  def flush(self):
    if self.dirty:
      storage.write_atomic(self.path, bytes(self.data))
      self.dirty = False

  def close(self):
    self.flush()


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
  if storage.isdir(path):
    path = storage.join(path, "metrics.jsonl")
  rows, skipped = [], 0
  for line in storage.read_bytes(path).decode("utf-8", "replace").splitlines():
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
