"""The run loop: K seeds of a family's Program trained round by round, with early stopping.

The loop's progress is a pytree, `LoopState`; early stopping is a pure function of it
(`after_round`); the run's checkpoint is one tree {states, best, loop}. What happens around each
round -- metrics lines, curves, checkpoints, printing -- is the caller's, through `Hooks`, so
`train` is a plain loop:

  for r in rounds:  for c in chunks:  states = train_chunk(..., first=c * chunk_steps)
                    loop, improved = after_round(loop, val, ...)
                    best = where(improved, states, best); hooks.after_round(...)

A round runs as a few chunks of steps (families/program.py, chunk_steps), so that the host can
draw the progress bar and stop the run between them without a callback inside the program (which
the persistent compilation cache would refuse to keep). Every family runs through it: the neural
ones as one jitted, vmapped program per chunk; KNN / SVM as a one-chunk, one-round program fitted
on the host (families/classical.py).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np

from hsi_jax import seeds


@flax.struct.dataclass
class LoopState:
  """Progress of K seeds. Seed k's best state is the one after round best_round[k]. Between rounds
  chunk is 0 and the round sums are 0; a run stopped within round `round` (a signal) holds the
  chunks it finished and their sums, and resumes from the next chunk."""
  round: np.ndarray          # () int64: rounds done = the index of the next round
  best_val: np.ndarray       # (K,) float64: best validation accuracy so far (-1 before any)
  best_round: np.ndarray     # (K,) int64: 0-based round of best_val (-1 before any)
  stopped: np.ndarray        # (K,) bool: early-stopped; its best state is frozen
  rounds_run: np.ndarray     # (K,) int64: rounds the seed trained (up to its stop)
  train_seconds: np.ndarray  # () float64: wall time of the rounds so far, all seeds together
  chunk: np.ndarray          # () int64: chunks of round `round` done
  loss_sum: np.ndarray       # (K,) float64: their loss sums (Program.train_chunk)
  loss_count: np.ndarray     # (K,) float64: their loss counts
  round_seconds: np.ndarray  # () float64: their wall time


def start(num_seeds: int) -> LoopState:
  return LoopState(round=np.asarray(0, np.int64), best_val=np.full(num_seeds, -1.0),
                   best_round=np.full(num_seeds, -1, np.int64),
                   stopped=np.zeros(num_seeds, bool), rounds_run=np.zeros(num_seeds, np.int64),
                   train_seconds=np.asarray(0.0), chunk=np.asarray(0, np.int64),
                   loss_sum=np.zeros(num_seeds), loss_count=np.zeros(num_seeds),
                   round_seconds=np.asarray(0.0))


def after_round(loop: LoopState, val_accuracy: np.ndarray, patience: int,
                seconds: float) -> tuple[LoopState, np.ndarray]:
  """(the loop after round `loop.round`, improved (K,) bool). A seed improves when it is active
  and beats its best validation accuracy; it stops after `patience` rounds without improving.
  `seconds`: the round's wall time not yet in loop.round_seconds."""
  r = int(loop.round)
  active = ~loop.stopped
  improved = active & (val_accuracy > loop.best_val)
  best_round = np.where(improved, r, loop.best_round)
  zeros = np.zeros_like(loop.loss_sum)
  return LoopState(
      round=np.asarray(r + 1, np.int64), best_val=np.where(improved, val_accuracy, loop.best_val),
      best_round=best_round, stopped=loop.stopped | (r - best_round >= patience),
      rounds_run=np.where(active, r + 1, loop.rounds_run),
      train_seconds=np.asarray(float(loop.train_seconds) + float(loop.round_seconds) + seconds),
      chunk=np.asarray(0, np.int64), loss_sum=zeros, loss_count=zeros,
      round_seconds=np.asarray(0.0)), improved


def after_chunk(loop: LoopState, sums: dict) -> LoopState:
  """The loop with one more chunk of round `loop.round` done; sums: its (K,) loss_sum and count."""
  return loop.replace(chunk=np.asarray(int(loop.chunk) + 1, np.int64),
                      loss_sum=loop.loss_sum + np.asarray(sums["loss_sum"], np.float64),
                      loss_count=loop.loss_count + np.asarray(sums["count"], np.float64))


@dataclasses.dataclass(frozen=True)
class RoundResult:
  """What a round leaves for the hooks: per real seed (K,) arrays."""
  index: int                 # 0-based round
  losses: np.ndarray         # (K,) mean training loss of the round
  val_accuracy: np.ndarray   # (K,)
  val_counted: np.ndarray    # (K,) validation pixels counted
  active: np.ndarray         # (K,) bool: seeds that trained this round
  seconds: float


@dataclasses.dataclass(frozen=True)
class Hooks:
  """Called by `train`: before_round(r) as round r starts (or resumes); after_chunk(steps) when
  the round's first `steps` steps are done; after_round(result, loop, states, best) once a round
  is accounted for; on_nonfinite(result, loop) before the loop raises on a non-finite loss (its
  message); stop_requested() between chunks: True ends training there, with
  on_stop(loop, states, best) (which saves the run and raises)."""
  before_round: Callable[[int], None] = lambda r: None
  after_chunk: Callable[[int], None] = lambda steps: None
  after_round: Callable[[RoundResult, LoopState, Any, Any], None] = lambda *args: None
  on_nonfinite: Callable[[RoundResult, LoopState], str] = lambda *args: ""
  stop_requested: Callable[[], bool] = lambda: False
  on_stop: Callable[[LoopState, Any, Any], None] = lambda *args: None


def _select(mask, new, old):
  """Per seed: new where mask[k] else old (leading axis = seeds)."""
  return jax.tree.map(lambda n, o: jnp.where(mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, o),
                      new, old)


def train_chunks(program, train_chunk, states, loop: LoopState, round_keys, learning_rate: float,
                 num_real: int, hooks: Hooks):
  """The remaining chunks of round loop.round -> (states, loop, finished: whether all ran).
  Chunk c + 1 is dispatched before chunk c's sums are read, so the device never waits for the
  host; reading them is the round's only host round trip per chunk. After each chunk is read,
  hooks.stop_requested() may end the round early (the chunk in flight is finished first)."""
  in_flight = []  # the sums of chunks dispatched and not yet read, oldest first
  start_time = time.perf_counter()
  chunk, stopping = int(loop.chunk), False
  while True:
    if chunk < program.chunks_per_round and not stopping:
      states, sums = train_chunk(states, program.data, round_keys, learning_rate,
                                 np.int32(chunk * program.chunk_steps))
      in_flight.append(sums)
      chunk += 1
    if not in_flight:
      break
    if len(in_flight) > 1 or chunk == program.chunks_per_round or stopping:
      done = in_flight.pop(0)
      loop = after_chunk(loop, {k: np.asarray(v)[:num_real] for k, v in done.items()})
      hooks.after_chunk(min(int(loop.chunk) * program.chunk_steps, program.steps_per_round))
      stopping = stopping or hooks.stop_requested()
  seconds = time.perf_counter() - start_time
  loop = loop.replace(round_seconds=np.asarray(float(loop.round_seconds) + seconds))
  return states, loop, int(loop.chunk) == program.chunks_per_round


def train_round(program, states, round_keys, learning_rate: float):
  """One whole round of the program's K' seeds from its first chunk, as `train` runs it, without
  validation or hooks (benchmarks, tests) -> (states, losses (K',))."""
  num_seeds = len(round_keys)
  states, loop, _ = train_chunks(program, program.train_chunk, states, start(num_seeds),
                                 round_keys, learning_rate, num_seeds, Hooks())
  return states, loop.loss_sum / np.maximum(loop.loss_count, 1)


def train(program, train_chunk, states, best, loop: LoopState, keys, learning_rate: Callable,
          patience: int, num_real: int, hooks: Hooks):
  """Rounds loop.round .. program.num_rounds - 1 (all seeds stopped ends it early), each from its
  next chunk; returns (states, best, loop). `train_chunk` is the program's chunk, compiled; keys
  (K',) the seeds' keys; learning_rate(r) the round's rate. States carry K' >= num_real seeds
  (mesh padding). A stop request between chunks calls hooks.on_stop (which raises)."""
  num_padded = len(keys)
  select = jax.jit(_select)
  for r in range(int(loop.round), program.num_rounds):
    if loop.stopped.all():
      break
    if hooks.stop_requested():
      hooks.on_stop(loop, states, best)
    hooks.before_round(r)
    round_keys = jnp.stack([seeds.round_key(k, r) for k in keys])
    states, loop, finished = train_chunks(program, train_chunk, states, loop, round_keys,
                                          learning_rate(r), num_real, hooks)
    if not finished:
      hooks.on_stop(loop, states, best)
    start_time = time.perf_counter()
    losses = loop.loss_sum / np.maximum(loop.loss_count, 1)
    correct, counted = program.val_accuracy(np.asarray(program.val_predictions(states,
                                                                               program.data)))
    val_accuracy = correct[:num_real] / np.maximum(counted[:num_real], 1)
    active = ~loop.stopped
    seconds = time.perf_counter() - start_time
    result = RoundResult(r, losses, val_accuracy, np.asarray(counted[:num_real]), active,
                         float(loop.round_seconds) + seconds)
    if not np.all(np.isfinite(losses[active])):
      raise FloatingPointError(hooks.on_nonfinite(result, loop))
    loop, improved = after_round(loop, val_accuracy, patience, seconds)
    if improved.any():
      best = select(jnp.asarray(np.pad(improved, (0, num_padded - num_real))), states, best)
    hooks.after_round(result, loop, states, best)
  return states, best, loop
