"""Orbax checkpoints of a run: `latest` (every epoch, for resuming) and `best` (by val accuracy).

Each is a CheckpointManager keeping one step under workdir/checkpoints/{latest,best}; orbax writes
to a temporary directory and renames, so a run killed mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import pathlib
from typing import Optional

import orbax.checkpoint as ocp


class Checkpoints:
  """save(kind, epoch, tree) / restore(kind, target) / latest_epoch(kind) for kind in latest, best."""

  def __init__(self, workdir):
    root = pathlib.Path(workdir).resolve() / "checkpoints"
    options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
    self._managers = {kind: ocp.CheckpointManager(root / kind, options=options)
                      for kind in ("latest", "best")}

  def latest_epoch(self, kind: str) -> Optional[int]:
    return self._managers[kind].latest_step()

  def save(self, kind: str, epoch: int, tree) -> None:
    manager = self._managers[kind]
    manager.save(epoch, args=ocp.args.StandardSave(tree))
    manager.wait_until_finished()

  def restore(self, kind: str, target):
    manager = self._managers[kind]
    return manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(target))

  def close(self) -> None:
    for manager in self._managers.values():
      manager.close()
