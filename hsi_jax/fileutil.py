"""Writing files so that a reader never sees half of one: write a temporary name, then rename.

In a multi-host run every process computes the same results; only process 0 writes them (the
others write to a scratch name that is removed).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import tempfile

import jax  # importing JAX starts no backend; process_index() does, when first called


def is_writer() -> bool:
  """True on process 0 (the only process of a single-host run)."""
  return jax.process_index() == 0


@contextlib.contextmanager
def atomic_path(path: os.PathLike):
  """Yields a temporary path beside `path`; renames it onto `path` only if the block succeeds
  (and only on the writing process)."""
  path = pathlib.Path(path)
  if not is_writer():
    with tempfile.TemporaryDirectory() as scratch:
      yield pathlib.Path(scratch) / path.name
    return
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
  os.close(fd)
  try:
    yield pathlib.Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets the user's umask
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def write_json(path: os.PathLike, obj) -> None:
  with atomic_path(path) as tmp:
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
