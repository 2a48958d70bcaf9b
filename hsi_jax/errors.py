"""Errors about a user's input, and how the launchers report them.

`UserError` is the base of the project's own errors about what a user gave it (a config value, a
data file, a split, a work directory): their message says what is wrong and how to fix it. The
launchers run through `run_main`, which prints such an error (or a user's missing file) as one
line on stderr and exits with status 2; `--verbose` or HSI_JAX_VERBOSE=1 shows the traceback as
well, for a bug report. Anything else is a bug and raises as usual.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags

class UserError(Exception):
  """Something wrong with what the user gave; the message names the fix."""


def run_main(main) -> None:
  """absl's app.run(main), with input errors reported as one line and exit status 2. Defines the
  launcher's --verbose flag (here, not at import: importing the library defines no flag)."""
  verbose = flags.DEFINE_bool("verbose", False, "Show the traceback of an input error too.")

  def guarded(argv):
    try:
      return main(argv)
    except (UserError, FileNotFoundError) as error:
      if verbose.value or os.environ.get("HSI_JAX_VERBOSE"):
        raise
      message = " ".join(str(error).split())
      print(f"error: {message}", file=sys.stderr, flush=True)
      sys.exit(2)

  app.run(guarded)
