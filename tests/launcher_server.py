"""Runs launcher commands, each in a fork of this process, which has already imported what the
launchers import: a command costs its own work, not the ~3 s of CPU of Python importing JAX, Flax,
Orbax and the project again (the bad-input table runs 80 of them; tests/test_bad_input.py).

Protocol: one JSON request per line on stdin, {"argv": ["launch/train.py", "--config=...", ...],
"stdout": path, "stderr": path}; the child runs the launcher as `python launch/train.py ...` does
(the script as __main__, sys.argv, sys.path[0] its folder, atexit handlers at the end), with its
stdin at /dev/null and its output in the two files; the answer is one line, {"returncode": N}
(a signal -N). No JAX backend is started here (checked before serving), so each child starts its
own, from the environment this process was started with, as a new process would.
"""

import atexit
import json
import os
import runpy
import sys
import threading
import traceback

import jax  # noqa: F401  (imported once, here)
from jax._src import xla_bridge

from hsi_jax import cli, predict, run, sweep  # noqa: F401  (what the launchers import)


def _child(request) -> None:
  """Runs the request's launcher and ends the process (never returns)."""
  code = 1
  try:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
      out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
      os.dup2(out, fd)
      os.close(out)
    script = request["argv"][0]
    sys.argv = list(request["argv"])
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    try:
      runpy.run_path(script, run_name="__main__")
      code = 0
    except SystemExit as stop:
      if stop.code is None or isinstance(stop.code, int):
        code = stop.code or 0
      else:
        print(stop.code, file=sys.stderr)
    # The interpreter's own ending: join the threads, then the atexit handlers (os._exit skips
    # both).
    threading._shutdown()  # noqa: SLF001
    atexit._run_exitfuncs()  # noqa: SLF001
  except BaseException:  # noqa: BLE001  (what the interpreter does with an uncaught exception)
    traceback.print_exc()
  finally:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
  if xla_bridge.backends_are_initialized() or threading.active_count() > 1:
    raise RuntimeError("a JAX backend or a thread started while importing: a fork would not "
                       "have it")
  for line in sys.stdin:
    request = json.loads(line)
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
      _child(request)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
  main()
