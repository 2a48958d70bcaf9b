"""What a neural family hands the run loop: K seeds' training as one vmapped, jitted program."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from hsi_jax import parallel
from hsi_jax.train import state as state_lib


@dataclasses.dataclass(frozen=True)
class Program:
  """Every array of states and data has a leading seeds axis of K' = K padded to a multiple of the
  mesh's `seeds` axis (run.py pads with copies of seed 0), but data equal in every seed, which is
  kept once without it (put_seed_data). The jitted functions take the data as
  an argument; the host functions turn device predictions into numbers. Maps are made from each
  seed's inference bundle, tile by tile (the family's make_tile_predictor; inference.py).

  init(keys (K',)) -> states                      jitted; sharded over `seeds`
  train_chunk(states, data, keys (K',), lr (), first ()) -> (states, {"loss_sum": (K',),
      "count": (K',)})                            jitted, donates: steps first .. first +
                                                  chunk_steps - 1 of the round keys draw; a round
                                                  is chunks_per_round of them (loop.py), its loss
                                                  sum(loss_sum) / max(sum(count), 1)
  compile_chunk(states, data, keys, lr, first) -> train_chunk compiled for these arguments (once)
  val_predictions(states, data) -> (K', ...)      jitted; each seed's validation predictions
  val_accuracy(predictions) -> (correct (K',), counted (K',))                 host
  seed_bundle(best_states, k) -> dict             seed k's part of its inference bundle:
                                                  preprocessing, variables or classifier
  num_params(states) -> int or None               one seed's parameters (None: not a network)
  run_info(best_states, k) -> dict                seed k's extra results.json entries
  """
  data: Any
  init: Callable
  train_chunk: Callable
  val_predictions: Callable
  val_accuracy: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
  seed_bundle: Callable
  num_rounds: int          # rounds of training at most (before early stopping)
  steps_per_round: int     # optimiser steps in a round (the longest seed's, when they differ)
  seed_steps: tuple        # (K',) each seed's own steps in a round (its single run's)
  batch_size: int          # examples per step and seed
  chunk_steps: int         # steps of a chunk (chunk_steps(steps_per_round))
  round_name: str          # "epoch" (windows) or "round" (pixels: train.eval_every steps)
  compile_chunk: Callable = None  # default: train_chunk.lower(...).compile()
  compile_note: Optional[str] = None  # what compiling means, for the output ("" = nothing)
  num_params: Callable = None     # default: state.count_params of seed 0's state
  run_info: Callable = lambda best_states, k: {}

  def __post_init__(self):
    if self.compile_chunk is None:
      object.__setattr__(self, "compile_chunk",
                         lambda *args: self.train_chunk.lower(*args).compile())
    if self.num_params is None:
      object.__setattr__(self, "num_params", lambda states: state_lib.count_params(
          jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), states)))
    if self.compile_note is None:
      object.__setattr__(self, "compile_note", f"the training {self.round_name} "
                         f"({self.steps_per_round} steps of {self.batch_size}, "
                         f"{self.chunks_per_round} chunks)")

  @property
  def chunks_per_round(self) -> int:
    return -(-self.steps_per_round // self.chunk_steps)


MAX_CHUNKS = 8  # a round's chunks, at most: its host round trips, whatever its steps


def chunk_steps(steps: int) -> int:
  """The steps of a chunk for a round of `steps`: the round cut into 4 to MAX_CHUNKS chunks (fewer
  when it has fewer steps), the count that pads the fewest steps (ties: more chunks). Between
  chunks the host draws the progress bar and may stop the run (a signal); a chunk is a pure
  program (no host callback inside, so the persistent compilation cache keeps it)."""
  counts = range(min(4, steps), min(MAX_CHUNKS, steps) + 1)
  padding = {n: -(-steps // -(-steps // n)) * -(-steps // n) - steps for n in counts}
  return -(-steps // min(counts, key=lambda n: (padding[n], -n)))


@jax.jit
def _take_seed(tree, k):
  return jax.tree.map(lambda x: x[k], tree)


def seed_of(tree, k: int):
  """Seed k of every leaf of `tree` (arrays with a leading seeds axis (K, ...)) as numpy arrays
  (...): one program for the whole tree and every k (indexing leaf by leaf compiles one per leaf
  shape, ~60 for DA-IMRN)."""
  return jax.tree.map(np.asarray, _take_seed(tree, np.int32(k)))


def make_mesh(config, num_seeds: int) -> Mesh:
  """The (seeds, data) mesh of K = num_seeds runs: config.mesh_seeds devices on `seeds` (0 = the
  largest divisor of the device count not above K), the rest on `data`."""
  return parallel.make_mesh(seeds=parallel.seeds_axis(num_seeds, jax.device_count(),
                                                   config.mesh_seeds))


def seed_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("seeds"))


def over_seeds(fn, num_seeds: int, in_axes=0):
  """fn mapped over a leading seeds axis: jax.vmap (batch rules sharded over the mesh axis
  `seeds`) for several seeds; for one, fn itself between a squeeze and an expand of that axis, so
  that a single run compiles the unbatched program (a vmapped convolution folds the seeds axis
  into its batch and may sum in another order: the numbers of a single run stay those of the
  plain program)."""
  if num_seeds > 1:
    return jax.vmap(fn, in_axes=in_axes, spmd_axis_name="seeds")
  axes = in_axes if isinstance(in_axes, tuple) else None

  def single(*args):
    args = [arg if axes is not None and axes[i] is None else jax.tree.map(lambda x: x[0], arg)
            for i, arg in enumerate(args)]
    return jax.tree.map(lambda x: x[None], fn(*args))

  return single


def jit_over_seeds(fn, mesh: Mesh, num_seeds: int, in_axes=0, donate: bool = False,
                   out_shardings=None, compiler_options=None):
  """jit(over_seeds(fn)), the seeds axis sharded over the mesh axis `seeds`. Outputs are
  replicated unless out_shardings says otherwise (what the host reads back must be replicated on
  a multi-host mesh). compiler_options: XLA's, as models.compiler_options gives them."""
  return jax.jit(over_seeds(fn, num_seeds, in_axes),
                 out_shardings=out_shardings or parallel.replicated(mesh),
                 donate_argnums=0 if donate else (), compiler_options=compiler_options)


def put_seed_data(host, mesh: Mesh, num_seeds: int, images: Sequence[str]):
  """K' seeds' stacked host data (a dataclass pytree, every field with a leading seeds axis) on
  the devices, and the vmap axes of its fields (a pytree prefix for over_seeds' in_axes). A field
  named in `images` (the scene-sized ones) that is equal in every seed -- the scene of seeds that
  share a partition, and its preprocessing -- is kept once, replicated, without the seeds axis
  (axis None): one resident copy instead of K'. Every other field is sharded over `seeds` (axis
  0): the pixels and windows stay per seed, so each seed's model inputs are still gathered as its
  own batch. One seed keeps every axis (over_seeds' single path squeezes it). Every process holds
  the same host data (parallel.put), so every process decides alike."""
  def shared(x):
    return num_seeds > 1 and all(np.array_equal(x[0], x[k]) for k in range(1, len(x)))

  once = {name for name in images if shared(getattr(host, name))}
  names = [field.name for field in dataclasses.fields(host)]
  data = {name: parallel.put(getattr(host, name)[0], parallel.replicated(mesh)) if name in once
          else parallel.put(getattr(host, name), seed_sharding(mesh)) for name in names}
  return host.replace(**data), host.replace(**{n: None if n in once else 0 for n in names})


def pad_rows(arrays, value) -> np.ndarray:
  """Stacks arrays along a new leading axis, each padded to the longest first axis with value."""
  rows = max(a.shape[0] for a in arrays)
  return np.stack([np.concatenate([a, np.full((rows - len(a),) + a.shape[1:], value, a.dtype)])
                   for a in arrays])


def init_fn(make_init, mesh: Mesh, num_seeds: int):
  """keys (K',) -> states, one jitted program sharded over seeds."""
  return jax.jit(over_seeds(make_init, num_seeds), out_shardings=seed_sharding(mesh))
