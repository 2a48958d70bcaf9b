"""Stopping a run cleanly on SIGTERM (what a scheduler's preemption sends) or SIGINT (Ctrl-C).

`Stopped` is what the training loop raises when a signal has stopped it at a checkpoint; the
launchers (cli.run_main) print its message as one line and exit 128 + the signal's number (143 for
SIGTERM, 130 for SIGINT), as a stop outside training does at once.

`handle_signals()` is a context manager for a whole run: a signal ends the process at once with
its one line (on the stderr the run started with, also while a checkpoint save holds file
descriptor 2) and that exit status. Nothing is saved; what has been written stays valid: every
file is written under a temporary name and renamed (the temporaries of writes in progress are
removed on the way out; a later run in the same work directory removes any left), every
checkpoint is saved synchronously inside `deferred()`, and the work directory's lock is an flock,
which the kernel releases. Inside `deferred()`, the training loop, a signal is only recorded: the
loop asks `requested()` between chunks of a round, saves a checkpoint there and raises `Stopped`
itself; one that comes after the loop's last look ends the process when `deferred()` is left (the
final checkpoint saved). A second SIGINT while one is pending ends the process at once too
(someone at the terminal does not want to wait for the chunk).

Why "at once" is an exit and not an exception: a Python signal handler runs wherever the main
thread is. An exception raised there lands inside JAX's tracing or inside a garbage-collector
callback (where Python prints "Exception ignored" and drops it), or unwinds while XLA is still
compiling in its own threads, and the interpreter then crashes as it shuts down (SIGSEGV, exit
139 instead of 143; seen on this project's CPU with a signal during the training chunk's compile).

On a multi-host run every process must stop at the same chunk: `requested()` is then agreed
across processes (any process signalled stops them all), one small collective per chunk.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

import jax
import numpy as np

from hsi_jax import fileutil

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
  """A run stopped by a signal at a checkpoint (raised by the training loop, see the module
  docstring). BaseException: no `except Exception` on the way swallows it."""

  def __init__(self, signum: int, message: str):
    super().__init__(message)
    self.signum = signum

  @property
  def exit_status(self) -> int:
    return 128 + self.signum


_state = {"deferring": False, "received": None, "stderr": None}


def _handler(signum, frame):
  del frame
  pending = _state["received"]
  _state["received"] = signum
  if not _state["deferring"] or (pending == signal.SIGINT and signum == signal.SIGINT):
    _exit_now(signum, second=pending is not None)


def _exit_now(signum: int, second: bool = False) -> None:
  """Ends the process with exit status 128 + signum, without unwinding or interpreter shutdown
  (the module docstring says why): the live temporaries removed, what was printed flushed, the
  stop's line written to the stderr that handle_signals found (`second`: the signal came while
  one was pending). Exits even if a step fails (a closed pipe, a write interrupted inside a
  buffered stream)."""
  message = (f"stopped by {signal.Signals(signum).name}"
             + (" (a second one: at once)" if second else "")
             + "; run the same command to resume from the last checkpoint.")
  try:
    fileutil.remove_live_temporaries()
    for stream in (sys.stdout, sys.stderr):
      with contextlib.suppress(Exception):
        stream.flush()
    if _state["stderr"] is not None:
      os.write(_state["stderr"], f"{message}\n".encode())
  finally:
    os._exit(128 + signum)


@contextlib.contextmanager
def handle_signals():
  """While inside, SIGTERM and SIGINT end the process at once (or are deferred, see the module
  docstring); the previous handlers are restored after. Only in the main thread (elsewhere: no
  change)."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = {s: signal.signal(s, _handler) for s in SIGNALS}
  try:
    stderr = os.dup(2)
  except OSError:  # started with no stderr: the line has nowhere to go
    stderr = None
  _state.update(deferring=False, received=None, stderr=stderr)
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    if stderr is not None:
      os.close(stderr)
    _state.update(deferring=False, received=None, stderr=None)


@contextlib.contextmanager
def deferred():
  """Inside, a signal is recorded for `requested()` instead of ending the process (one that came
  before is still pending); one still pending when the outermost block ends normally ends it
  then."""
  before = _state["deferring"]
  _state["deferring"] = True
  try:
    yield
  finally:
    _state["deferring"] = before
  signum = None if before else requested()
  if signum is not None:
    _exit_now(signum)


def requested() -> int | None:
  """The signal received (SIGTERM / SIGINT number), or None; agreed across processes."""
  received = _state["received"]
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # noqa: PLC0415  (multi-host runs only)
    signals = np.asarray(multihost_utils.process_allgather(np.int32(received or 0)))
    received = int(signals.max()) or None
  return received
