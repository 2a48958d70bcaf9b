"""What a run tells its user while it goes: a progress bar within each round (an epoch for
DA-IMRN), curves.png between.

`StepProgress` is updated by the run loop after each chunk of a round (loop.py: a few per round,
families/program.py's MAX_CHUNKS at most, never a callback from inside the program). On a terminal
it redraws one line (steps, patches/s, ETA); when the output is a file or a pipe it prints a plain
line at each quarter of the round instead.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

from hsi_jax import fileutil
from hsi_jax import plots
from hsi_jax.train import optim


class StepProgress:
  """Host-side state of the bar of the epoch in flight (`begin` before the epoch, `end` after)."""

  def __init__(self, stream=None, min_interval: float = 0.5):
    self._stream = stream or sys.stdout
    self._min_interval = min_interval
    self._label, self._steps, self._examples_per_step = "", 1, 1
    self._start = self._last_draw = 0.0
    self._done = 0
    self._next_quarter = 1

  @property
  def interactive(self) -> bool:
    return bool(getattr(self._stream, "isatty", lambda: False)())

  def begin(self, label: str, steps: int, examples_per_step: int) -> None:
    self._label, self._steps, self._examples_per_step = label, max(int(steps), 1), examples_per_step
    self._start = self._last_draw = time.perf_counter()
    self._done, self._next_quarter = 0, 1

  def update(self, done: int) -> None:
    """The round's first `done` steps are done."""
    if done <= self._done:
      return
    self._done = done
    now = time.perf_counter()
    if self.interactive:
      if now - self._last_draw >= self._min_interval or done == self._steps:
        self._last_draw = now
        self._stream.write("\r" + self._line(now))
        self._stream.flush()
    elif done * 4 >= self._next_quarter * self._steps and done < self._steps:
      self._next_quarter = done * 4 // self._steps + 1
      print(self._line(now), file=self._stream, flush=True)

  def _line(self, now: float) -> str:
    elapsed = max(now - self._start, 1e-9)
    rate = self._done * self._examples_per_step / elapsed
    eta = elapsed / self._done * (self._steps - self._done)
    width = 24
    filled = width * self._done // self._steps
    return (f"{self._label} [{'#' * filled}{'.' * (width - filled)}] {self._done}/{self._steps} "
            f"steps, {rate:.0f} patches/s, ETA {eta:.0f} s")

  def end(self) -> None:
    if self.interactive:
      self._stream.write("\r" + " " * 100 + "\r")
      self._stream.flush()


def lr_drop_rounds(train_config, num_rounds: int) -> tuple[int, ...]:
  """0-based rounds at which the learning rate (optim.round_learning_rate) changes; none marked
  for a cosine (it changes every round)."""
  if train_config.get("cosine_period"):
    return ()
  rates = [optim.round_learning_rate(train_config, r) for r in range(num_rounds)]
  return tuple(r for r in range(1, num_rounds) if rates[r] != rates[r - 1])


def read_metrics(path: pathlib.Path) -> list[dict]:
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line]


class Curves:
  """Redraws workdir/curves.png from workdir/metrics.jsonl, at most every `min_seconds` (drawing
  takes a fraction of a second; accelerator epochs can be shorter) and always when forced."""

  def __init__(self, workdir: pathlib.Path, title: str, lr_drops: tuple[int, ...],
               round_name: str = "epoch", min_seconds: float = 20.0):
    self._workdir, self._title, self._lr_drops = pathlib.Path(workdir), title, lr_drops
    self._round_name = round_name
    self._min_seconds = min_seconds
    self._last = -float("inf")

  def update(self, force: bool = False) -> None:
    now = time.perf_counter()
    if not fileutil.is_writer() or (not force and now - self._last < self._min_seconds):
      return
    records = read_metrics(self._workdir / "metrics.jsonl")
    if records:
      plots.plot_curves(self._workdir / "curves.png", records, self._title, self._lr_drops,
                        self._round_name)
    self._last = now
