"""Writing files so that a reader never sees half of one: write a temporary name, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import tempfile


@contextlib.contextmanager
def atomic_path(path: os.PathLike):
  """Yields a temporary path beside `path`; renames it onto `path` only if the block succeeds."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
  os.close(fd)
  try:
    yield pathlib.Path(tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_json(path: os.PathLike, obj) -> None:
  with atomic_path(path) as tmp:
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
