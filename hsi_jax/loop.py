"""The run loop: K seeds of a family's Program trained round by round, with early stopping.

The loop's progress is a pytree, `LoopState`; early stopping is a pure function of it
(`after_round`); the run's checkpoint is one tree {states, best, loop}. What happens around each
round -- metrics lines, curves, checkpoints, printing -- is the caller's, through `Hooks`, so
`train` is a plain loop:

  for r in rounds:  states = train_round(...); loop, improved = after_round(loop, val, ...);
                    best = where(improved, states, best); hooks.after_round(...)

Every family runs through it: the neural ones as one jitted, vmapped program per round; KNN / SVM
as a one-round program fitted on the host (families/classical.py).
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
  """Progress of K seeds. Seed k's best state is the one after round best_round[k]."""
  round: np.ndarray          # () int64: rounds done = the index of the next round
  best_val: np.ndarray       # (K,) float64: best validation accuracy so far (-1 before any)
  best_round: np.ndarray     # (K,) int64: 0-based round of best_val (-1 before any)
  stopped: np.ndarray        # (K,) bool: early-stopped; its best state is frozen
  rounds_run: np.ndarray     # (K,) int64: rounds the seed trained (up to its stop)
  train_seconds: np.ndarray  # () float64: wall time of the rounds so far, all seeds together


def start(num_seeds: int) -> LoopState:
  return LoopState(round=np.asarray(0, np.int64), best_val=np.full(num_seeds, -1.0),
                   best_round=np.full(num_seeds, -1, np.int64),
                   stopped=np.zeros(num_seeds, bool), rounds_run=np.zeros(num_seeds, np.int64),
                   train_seconds=np.asarray(0.0))


def after_round(loop: LoopState, val_accuracy: np.ndarray, patience: int,
                seconds: float) -> tuple[LoopState, np.ndarray]:
  """(the loop after round `loop.round`, improved (K,) bool). A seed improves when it is active
  and beats its best validation accuracy; it stops after `patience` rounds without improving."""
  r = int(loop.round)
  active = ~loop.stopped
  improved = active & (val_accuracy > loop.best_val)
  best_round = np.where(improved, r, loop.best_round)
  return LoopState(
      round=np.asarray(r + 1, np.int64), best_val=np.where(improved, val_accuracy, loop.best_val),
      best_round=best_round, stopped=loop.stopped | (r - best_round >= patience),
      rounds_run=np.where(active, r + 1, loop.rounds_run),
      train_seconds=np.asarray(float(loop.train_seconds) + seconds)), improved


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
  """Called by `train`: before_round(r) as round r starts; after_round(result, loop, states, best)
  once a round is accounted for; on_nonfinite(result, loop) before the loop raises on a
  non-finite loss (its message)."""
  before_round: Callable[[int], None] = lambda r: None
  after_round: Callable[[RoundResult, LoopState, Any, Any], None] = lambda *args: None
  on_nonfinite: Callable[[RoundResult, LoopState], str] = lambda *args: ""


def _select(mask, new, old):
  """Per seed: new where mask[k] else old (leading axis = seeds)."""
  return jax.tree.map(lambda n, o: jnp.where(mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, o),
                      new, old)


def train(program, train_round, states, best, loop: LoopState, keys, learning_rate: Callable,
          patience: int, num_real: int, hooks: Hooks):
  """Rounds loop.round .. program.num_rounds - 1 (all seeds stopped ends it early); returns
  (states, best, loop). `train_round` is the program's round, compiled; keys (K',) the seeds'
  keys; learning_rate(r) the round's rate. States carry K' >= num_real seeds (mesh padding)."""
  num_padded = len(keys)
  select = jax.jit(_select)
  for r in range(int(loop.round), program.num_rounds):
    if loop.stopped.all():
      break
    start_time = time.perf_counter()
    hooks.before_round(r)
    round_keys = jnp.stack([seeds.round_key(k, r) for k in keys])
    states, round_metrics = train_round(states, program.data, round_keys, learning_rate(r))
    losses = np.asarray(round_metrics["loss"])[:num_real]
    correct, counted = program.val_accuracy(np.asarray(program.val_predictions(states,
                                                                               program.data)))
    val_accuracy = correct[:num_real] / np.maximum(counted[:num_real], 1)
    active = ~loop.stopped
    result = RoundResult(r, losses, val_accuracy, np.asarray(counted[:num_real]), active,
                         time.perf_counter() - start_time)
    if not np.all(np.isfinite(losses[active])):
      raise FloatingPointError(hooks.on_nonfinite(result, loop))
    loop, improved = after_round(loop, val_accuracy, patience, result.seconds)
    if improved.any():
      best = select(jnp.asarray(np.pad(improved, (0, num_padded - num_real))), states, best)
    hooks.after_round(result, loop, states, best)
  return states, best, loop
