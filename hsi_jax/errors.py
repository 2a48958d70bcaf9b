"""The project's errors about a user's input, and about the filesystem it writes to.

`UserError` is the base of the project's own errors about what a user gave it (a config value, a
data file, a split, a work directory): their message says what is wrong and how to fix it. The
launchers report them as one line and exit with status 2 (`hsi_jax/cli.py`), as they do an
OSError found in an error's chain (`os_error_in`: a full disk, a read-only directory), in the
words of `filesystem_message`.
"""

from __future__ import annotations

import errno
import os
import pathlib
import shutil
from typing import Optional


class UserError(Exception):
  """Something wrong with what the user gave; the message names the fix."""


class DataError(UserError, ValueError):
  """A data file exists but holds something other than what is needed."""


class FilesystemError(UserError, OSError):
  """Writing the run's files failed: what, where, how much room was needed and is left."""


def filesystem_message(error: OSError, path, needed: Optional[int] = None) -> str:
  """One line for an OSError while writing under `path`: the reason, where, and for a full disk
  the room needed and left."""
  path = pathlib.Path(error.filename or path)
  reason = error.strerror or str(error)
  line = f"cannot write {path}: {reason}"
  if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
    existing = next((p for p in [path, *path.parents] if p.exists()), pathlib.Path("/"))
    free = shutil.disk_usage(existing).free
    line += (f" ({_size(needed)} needed, " if needed else " (") + f"{_size(free)} free there)"
    line += "; free some space or use a --workdir on another filesystem"
  elif error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
    line += "; give a --workdir you can write to"
  return line + " (a rerun of the same command resumes from the last checkpoint)."


def _size(count: Optional[int]) -> str:
  return f"{count / 2**20:,.1f} MB"


def os_error_in(error: BaseException) -> Optional[OSError]:
  """The OSError in the chain of `error` (orbax and TensorStore wrap them), or one read from a
  TensorStore message ('... [OS error 28: No space left on device]'), or None."""
  seen = set()
  while error is not None and id(error) not in seen:
    if isinstance(error, OSError):
      return error
    text = str(error)
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES):
      if f"OS error {code}:" in text or os.strerror(code) in text:
        return OSError(code, os.strerror(code))
    seen.add(id(error))
    error = error.__cause__ or error.__context__
  return None
