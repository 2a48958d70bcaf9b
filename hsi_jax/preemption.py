"""Stopping a run cleanly on SIGTERM (what a scheduler's preemption sends) or SIGINT (Ctrl-C).

`Stopped` is what a run raises when a signal stops it; the launchers (cli.run_main) print its
message as one line and exit 128 + the signal's number (143 for SIGTERM, 130 for SIGINT).

`handle_signals()` is a context manager for a whole run: a signal raises `Stopped` at once
(nothing is saved; what has been written stays valid, every write being atomic), except inside
`deferred()`, the training loop, where it is only recorded: the loop asks `requested()` between
chunks of a round, saves a checkpoint there and raises `Stopped` itself. A second SIGINT while
one is pending stops at once (someone at the terminal does not want to wait for the chunk).

On a multi-host run every process must stop at the same chunk: `requested()` is then agreed
across processes (any process signalled stops them all), one small collective per chunk.
"""

from __future__ import annotations

import contextlib
import signal
import threading

import jax
import numpy as np

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
  """A run stopped by a signal. BaseException: no `except Exception` on the way swallows it."""

  def __init__(self, signum: int, message: str):
    super().__init__(message)
    self.signum = signum

  @property
  def exit_status(self) -> int:
    return 128 + self.signum


_state = {"deferring": False, "received": None}


def _handler(signum, frame):
  del frame
  pending = _state["received"]
  _state["received"] = signum
  if not _state["deferring"] or (pending == signal.SIGINT and signum == signal.SIGINT):
    raise Stopped(signum, f"stopped by {signal.Signals(signum).name}"
                  + (" (a second one: at once)" if pending is not None else "")
                  + "; run the same command to resume from the last checkpoint.")


@contextlib.contextmanager
def handle_signals():
  """SIGTERM and SIGINT raise Stopped (or are deferred, see the module docstring) while inside;
  the previous handlers are restored after. Only in the main thread (elsewhere: no change)."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = {s: signal.signal(s, _handler) for s in SIGNALS}
  _state.update(deferring=False, received=None)
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    _state.update(deferring=False, received=None)


@contextlib.contextmanager
def deferred():
  """Inside, a signal is recorded for `requested()` instead of raising (one that came before is
  still pending)."""
  before = _state["deferring"]
  _state["deferring"] = True
  try:
    yield
  finally:
    _state["deferring"] = before


def requested() -> int | None:
  """The signal received (SIGTERM / SIGINT number), or None; agreed across processes."""
  received = _state["received"]
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # noqa: PLC0415  (multi-host runs only)
    signals = np.asarray(multihost_utils.process_allgather(np.int32(received or 0)))
    received = int(signals.max()) or None
  return received
