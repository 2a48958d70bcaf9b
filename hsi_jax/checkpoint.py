"""Orbax checkpoints of a run: workdir/checkpoints/latest, the resume point.

One CheckpointManager keeping one step; orbax writes to a temporary directory and renames, so a
run killed mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import pathlib
from typing import Optional

import orbax.checkpoint as ocp


class Checkpoints:
  """save(round, tree) / restore(target) / latest_round()."""

  def __init__(self, workdir):
    options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
    self._manager = ocp.CheckpointManager(pathlib.Path(workdir).resolve() / "checkpoints" / "latest",
                                          options=options)

  def latest_round(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, round_index: int, tree) -> None:
    self._manager.save(round_index, args=ocp.args.StandardSave(tree))
    self._manager.wait_until_finished()

  def restore(self, target):
    return self._manager.restore(self._manager.latest_step(),
                                 args=ocp.args.StandardRestore(target))

  def close(self) -> None:
    self._manager.close()
