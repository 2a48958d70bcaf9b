"""The project's errors about a user's input.

`UserError` is the base of the project's own errors about what a user gave it (a config value, a
data file, a split, a work directory): their message says what is wrong and how to fix it. The
launchers report them as one line and exit with status 2 (`hsi_jax/cli.py`).
"""


class UserError(Exception):
  """Something wrong with what the user gave; the message names the fix."""


class DataError(UserError, ValueError):
  """A data file exists but holds something other than what is needed."""
