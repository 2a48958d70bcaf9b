"""Writing files so that a reader never sees half of one: write a temporary name, then rename.

In a multi-host run every process computes the same results; only process 0 writes them (the
others write to a scratch name that is removed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import re
import shutil
import tempfile

import jax  # importing JAX starts no backend; process_index() does, when first called


def file_sha256(path) -> str:
  """sha256 of a file's bytes, read in blocks (a scene's cube is hundreds of MB)."""
  digest = hashlib.sha256()
  with open(path, "rb") as file:
    for block in iter(lambda: file.read(1 << 24), b""):
      digest.update(block)
  return digest.hexdigest()


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
  _LIVE_TEMPORARIES.add(tmp)
  try:
    yield pathlib.Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets the user's umask
    os.replace(tmp, path)
  finally:
    _LIVE_TEMPORARIES.discard(tmp)
    if os.path.exists(tmp):
      os.remove(tmp)


_LIVE_TEMPORARIES: set[str] = set()  # atomic_path's temporaries whose block has not ended


def remove_live_temporaries() -> None:
  """Removes the temporaries of the atomic writes in progress, for a process that ends without
  unwinding (preemption's exit at a signal); what cannot be removed is left to
  remove_stale_temporaries."""
  for tmp in list(_LIVE_TEMPORARIES):
    with contextlib.suppress(OSError):
      os.remove(tmp)


# What atomic_path and bundle.save name their temporaries: ".<name>.<mkstemp's 8 characters>.tmp"
# and the suffix.
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def remove_stale_temporaries(directory: os.PathLike) -> list[pathlib.Path]:
  """Removes the temporaries our atomic writes left in `directory` (a write killed before its
  rename); -> what was removed. Only for a directory no other process is writing to (its lock is
  held)."""
  removed = []
  for path in sorted(pathlib.Path(directory).glob(".*.tmp*")):
    if _TEMPORARY.match(path.name):
      shutil.rmtree(path) if path.is_dir() else path.unlink()
      removed.append(path)
  return removed


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def write_json(path: os.PathLike, obj) -> None:
  with atomic_path(path) as tmp:
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
