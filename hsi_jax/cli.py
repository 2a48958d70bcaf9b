"""What every launcher shares: parsing its flags and reporting a user's mistake as one line.

`run_main(main)` is absl's `app.run(main)` with two differences. Flags are parsed by
`parse_flags`, which turns a mistake on the command line -- a config file that does not exist, an
unknown option after its colon, an override naming no config leaf (`--config.train.epoch=1`: the
nearest valid leaf is named), an override of the wrong type -- into one line. And inside `main`,
the project's own input errors (`errors.UserError`: a config value, a data file, a split, a work
directory), a missing file and a failing filesystem (an OSError anywhere in an error's chain: a
full disk, a read-only directory) are printed as one line. Both exit with status 2. `--verbose`
(or HSI_JAX_VERBOSE=1) shows the traceback as well, for a bug report; anything else is a bug and
raises as usual. SIGTERM and SIGINT stop a run cleanly (preemption.py): one line, exit status
128 + the signal's number (143, 130).
"""

from __future__ import annotations

import difflib
import os
import sys
import traceback
import warnings

from absl import app
from absl import flags
from absl import logging

from hsi_jax import config_util, errors, preemption

EXIT_USER_ERROR = 2


def _verbose() -> bool:
  return os.environ.get("HSI_JAX_VERBOSE", "").lower() in ("1", "true") or any(
      arg in ("--verbose", "--verbose=true", "--verbose=1") for arg in sys.argv)


def _fail(message: str):
  print("error: " + " ".join(str(message).split()), file=sys.stderr, flush=True)
  sys.exit(EXIT_USER_ERROR)


def _config_flags(argv) -> dict[str, tuple[str, list[tuple[str, str]]]]:
  """{flag name: (config spec, [(override path, its text)])} for each config flag on the command
  line (--config=SPEC and --config.a.b=V; also the two-argument forms)."""
  config_names = [name for name in flags.FLAGS
                  if type(flags.FLAGS[name]).__name__ == "_ConfigFlag"]
  found = {}
  args = list(argv[1:])
  for index, arg in enumerate(args):
    if not arg.startswith("--"):
      continue
    key, has_value, value = arg[2:].partition("=")
    if not has_value and index + 1 < len(args):
      value = args[index + 1]
    for name in config_names:
      if key == name:
        found.setdefault(name, [None, []])[0] = value
      elif key.startswith(name + "."):
        found.setdefault(name, [None, []])[1].append((key[len(name) + 1:], arg))
  return {name: (spec, overrides) for name, (spec, overrides) in found.items()}


def leaf_paths(config, prefix: str = "") -> list[str]:
  """Every path of a ConfigDict, sections and leaves: ['data', 'data.root', ...]."""
  paths = []
  for key, value in config.items():
    path = f"{prefix}{key}"
    paths.append(path)
    if hasattr(value, "items"):
      paths += leaf_paths(value, path + ".")
  return paths


def unknown_override_message(argv) -> str | None:
  """The message for an override that names no leaf of its config, or None if every one does."""
  for name, (spec, overrides) in _config_flags(argv).items():
    if spec is None:
      continue
    try:
      config = config_util.load_config(spec)
    except Exception:  # noqa: BLE001  (the config's own error is reported elsewhere)
      return None
    paths = set(leaf_paths(config))
    for path, text in overrides:
      if path not in paths:
        nearest = difflib.get_close_matches(path, sorted(paths), n=1, cutoff=0.6)
        hint = (f"did you mean --{name}.{nearest[0]}?" if nearest else
                f"the sections of {spec} are: {', '.join(sorted(config.keys()))}.")
        return f"{text}: {spec} has no leaf {path!r}; {hint}"
  return None


def _user_error_in(error: BaseException) -> errors.UserError | None:
  """The innermost UserError in the chain of `error` (ml_collections re-raises a config file's
  error as a copy whose message is the whole traceback)."""
  found, seen = None, set()
  while error is not None and id(error) not in seen:
    if isinstance(error, errors.UserError):
      found = error
    seen.add(id(error))
    error = error.__cause__ or error.__context__
  return found


def _missing_config_file(argv) -> str | None:
  for name, (spec, _) in _config_flags(argv).items():
    path = (spec or "").partition(":")[0]
    if spec is not None and not os.path.isfile(path):
      return (f"--{name}={spec}: no config file {path!r} (run from the repository root, or give "
              "its path, e.g. --config=configs/ip.py).")
  return None


def parse_flags(argv):
  """absl's flag parsing, with command-line mistakes reported as one line (module docstring)."""
  try:
    remaining = flags.FLAGS(argv)
  except Exception as error:  # noqa: BLE001  (sorted below; anything else is raised again)
    if _verbose():
      raise
    user_error = _user_error_in(error)
    if user_error is not None:  # raised by a config file's get_config
      _fail(f"{user_error}")
    unknown = unknown_override_message(argv)
    if unknown is not None:
      _fail(unknown)
    missing = _missing_config_file(argv)
    if missing:
      _fail(missing)
    if isinstance(error, flags.IllegalFlagValueError):  # e.g. --config.train.batch_size=abc
      _fail(f"{str(error).splitlines()[0]} (see --helpfull for the flags)")
    if isinstance(error, flags.Error):
      _fail(f"{str(error).splitlines()[0]} (see --helpshort for the flags)")
    raise
  if _verbose():
    return remaining
  missing = _missing_config_file(argv)
  if missing:
    _fail(missing)
  # ml_collections defers an error of get_config that is an OSError (a user's file that does not
  # exist, configs/custom.py) to the first read of the flag, as "Configuration is not available".
  for name in _config_flags(argv):
    try:
      flags.FLAGS[name].value.keys()  # a config that failed to load raises on its first use
    except OSError as error:
      _fail(str(error).split("earlier failure to load: ", 1)[-1])
  return remaining


def run_main(main) -> None:
  """app.run(main) with input errors reported as one line and exit status 2 (module docstring).
  Defines the launcher's --verbose flag (here, not at import: importing the library defines no
  flag)."""
  flags.DEFINE_bool("verbose", False, "Show the traceback of an input error too.")

  def guarded(argv):
    logging.set_verbosity(logging.WARNING)  # absl's INFO lines (backends tried, orbax saves)
    # A write that failed inside orbax leaves coroutines that Python reports at exit; the error
    # itself is said in one line.
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited",
                            category=RuntimeWarning)
    try:
      with preemption.handle_signals():
        return main(argv)
    except preemption.Stopped as stopped:
      print(str(stopped), file=sys.stderr, flush=True)
      sys.exit(stopped.exit_status)
    except (errors.UserError, FileNotFoundError) as error:
      if _verbose():  # the traceback for a bug report, and the same exit status
        traceback.print_exc()
      _fail(str(error))
    except Exception as error:  # noqa: BLE001  (a filesystem failure is a line; others raise)
      os_error = errors.os_error_in(error)
      if os_error is None:
        raise
      if _verbose():
        traceback.print_exc()
      _fail(errors.filesystem_message(os_error, os_error.filename or "."))

  app.run(guarded, flags_parser=parse_flags)

