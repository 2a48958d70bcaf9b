"""Orbax checkpoints of a run: workdir/checkpoints/latest, the resume point.

One CheckpointManager keeping the two latest saves, numbered by the loop's position (the steps
the loop has taken: a save within a round, on a signal, comes between two of its rounds'). Orbax
writes to a temporary directory and renames, so a run killed mid-save leaves the previous
checkpoints intact; temporary directories of such a save are removed when the next run opens
them. A save that fails (a full disk, a read-only directory) removes its partial directory and
raises a FilesystemError saying how much it needed. A save that fails to restore (a truncated or
garbled file) is set aside in checkpoints/damaged/ with a warning, and the one before it is used.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
from typing import Callable, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from hsi_jax import errors


class Checkpoints:
  """save(step, tree) / restore(target) / latest_step(); `warn` says what was set aside."""

  KEEP = 2  # saves kept: the previous one is there when the latest turns out damaged

  def __init__(self, workdir, warn: Callable[[str], None] = print):
    self.directory = pathlib.Path(workdir).resolve() / "checkpoints" / "latest"
    self._warn = warn
    self._manager = self._open()

  def _open(self):
    options = ocp.CheckpointManagerOptions(max_to_keep=self.KEEP, create=True,
                                           cleanup_tmp_directories=True)
    return ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, step: int, tree) -> None:
    with _stderr_held() as held:  # orbax's threads print tracebacks of a failed write
      try:
        self._manager.save(step, args=ocp.args.StandardSave(tree), force=True)
        self._manager.wait_until_finished()
      except Exception as error:  # noqa: BLE001  (only a filesystem error is turned into a line)
        os_error = errors.os_error_in(error)
        if os_error is None:
          raise
        self._remove_partial(step)
        held.drop()  # the one line below says it
        needed = sum(int(np.asarray(x).nbytes) for x in jax.tree.leaves(tree))
        raise errors.FilesystemError(errors.filesystem_message(os_error, self.directory,
                                                               needed)) from error

  def _remove_partial(self, step: int) -> None:
    """A failed save's directories (orbax's temporary one, or the step's, if it got as far)."""
    for path in self.directory.glob(f"{step}*"):
      if path.name == str(step) or ".orbax-checkpoint-tmp" in path.name:
        shutil.rmtree(path, ignore_errors=True)
    self._manager.reload()

  def restore(self, target, adapt: Optional[Callable] = None):
    """The latest save that restores, as `target`'s tree. A save whose files fail to restore is
    moved to checkpoints/damaged/ (a warning names it) and the one before it is tried.
    adapt(the save's leaf paths, target) -> None, or (old_target, complete) for a save of an older
    layout: it is restored as old_target and complete(restored) gives target's tree."""
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        adapted = adapt(self._saved_paths(step), target) if adapt else None
        if adapted is not None:
          old_target, complete = adapted
          return complete(self._restore(step, old_target))
        return self._restore(step, target)
      except Exception as error:  # noqa: BLE001  (any failure to read it: damaged)
        self._set_aside(step, error)
    raise errors.UserError(
        f"no checkpoint in {self.directory} can be read (each was set aside in "
        f"{self.directory.parent / 'damaged'}); remove {self.directory.parent} to train this run "
        "again from the start in the same work directory.")

  def _saved_paths(self, step: int) -> set[tuple[str, ...]]:
    """The leaf paths of a save, ('loop', 'round') ..., from the tree metadata orbax writes."""
    metadata = json.loads((self.directory / str(step) / "default" / "_METADATA").read_text())
    return {tuple(key["key"] for key in leaf["key_metadata"])
            for leaf in metadata["tree_metadata"].values()}

  def _restore(self, step, target):
    return self._manager.restore(step, args=ocp.args.StandardRestore(target))

  def _set_aside(self, step: int, error: BaseException) -> None:
    damaged = self.directory.parent / "damaged"
    damaged.mkdir(exist_ok=True)
    moved = damaged / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"
    (self.directory / str(step)).rename(moved)
    reason = " ".join(str(error).split())[:160]
    self._warn(f"warning: checkpoint {self.directory / str(step)} could not be read ({reason}); "
               f"moved to {moved}, trying the one before it.")
    self._manager.reload()

  def close(self) -> None:
    self._manager.close()


class _Held:
  def __init__(self):
    self.keep = True

  def drop(self):
    self.keep = False


@contextlib.contextmanager
def _stderr_held():
  """What is written to file descriptor 2 inside (by Python, orbax's threads or TensorStore) is
  held in a temporary file and written out at the end, unless dropped (yields a _Held)."""
  held = _Held()
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as capture:
    os.dup2(capture.fileno(), 2)
    try:
      yield held
    finally:
      sys.stderr.flush()
      if held.keep:
        os.dup2(saved, 2)
        os.close(saved)
        capture.seek(0)
        text = capture.read()
        if text:
          os.write(2, text)
      else:  # orbax's threads may still write: descriptor 2 stays on the capture; the process's
        # own lines (the error's one line) go to the real stderr through a new sys.stderr
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
        sys.stderr = os.fdopen(saved, "w", buffering=1)
