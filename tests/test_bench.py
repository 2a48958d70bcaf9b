"""launch/bench.py's epoch mode: one real round of the run's program on Indian Pines."""

import dataclasses
import math
import mmap
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hsi_jax import benchmark, config_util
from hsi_jax.data import split_sources
from hsi_jax.families import program as program_lib

from conftest import REPO


@pytest.mark.slow
def test_epoch_mode_times_the_runs_epoch_and_validation(indian_pines, monkeypatch):
  """The run's own program: the calls each timer makes are watched (the real calls, passed
  through), and the figures must be what the timer measured over exactly those calls."""
  config = config_util.load_config(str(REPO / "configs" / "ip.py") + ":runlocal")
  config.model.width = 0.125
  calls, timings = [], []
  make_program, seconds = benchmark._program, benchmark._seconds

  def watched(name, fn):
    def call(*args):
      calls.append(name)
      return fn(*args)
    return call

  def program(*args):
    made, keys, mesh = make_program(*args)
    return dataclasses.replace(
        made, train_chunk=watched("train_chunk", made.train_chunk),
        val_predictions=watched("val_predictions", made.val_predictions)), keys, mesh

  def timed(fn, repeats, usage=None):
    first = len(calls)
    measured = seconds(fn, repeats, usage)
    timings.append((calls[first:], repeats, measured))
    return measured

  monkeypatch.setattr(benchmark, "_program", program)
  monkeypatch.setattr(benchmark, "_seconds", timed)
  figures = benchmark.benchmark_epoch(config, rounds=1)
  split, _, _ = split_sources.split_from_config(config, labels=indian_pines)
  # The epoch trains every kept window and its flipped copy, in whole batches; validation scores
  # the partition's validation windows.
  batch = config.train.batch_size
  assert figures["train_examples"] == math.ceil(2 * len(split.train_windows) / batch) * batch
  assert figures["val_windows"] == len(split.val_windows)
  # Two timings, each of one warm-up round (the compilation) and rounds=1 timed round: the epoch
  # program's chunks, then the validation predictions, nothing else in either.
  (train_calls, train_repeats, train_s), (val_calls, val_repeats, val_s) = timings
  steps = figures["train_examples"] // batch
  chunks = math.ceil(steps / program_lib.chunk_steps(steps))
  assert train_calls == ["train_chunk"] * 2 * chunks and val_calls == ["val_predictions"] * 2
  assert train_repeats == val_repeats == 1
  assert (figures["train_s"], figures["val_s"]) == (round(train_s, 2), round(val_s, 2))
  assert figures["round_s"] == round(train_s + val_s, 2)
  assert figures["train_patches_per_s"] == round(figures["train_examples"] / train_s, 1)


class _WatchedCalls:
  """A compiled function, called as itself (result blocked on), with each call's seconds kept."""

  def __init__(self, compiled):
    self.compiled, self.seconds = compiled, []

  def __getattr__(self, name):
    return getattr(self.compiled, name)

  def __call__(self, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(self.compiled(*args))
    self.seconds.append(time.perf_counter() - start)
    return out


def test_profile_mode_lists_the_steps_ops_with_their_model_code(monkeypatch):
  """Op by op: a real trace of the step loop read back; every listed op is one of the compiled
  program's, the network's own matmuls are among them, the kinds add up to the listed total. The
  wall time per step is the traced call's (the real loop, its calls watched), not the trace's
  collection as well."""
  config = config_util.load_config(str(REPO / "configs" / "ip.py") + ":runlocal")
  config.model.width = 0.125
  loops = []
  compiled_step_loop = benchmark._compiled_step_loop

  def watched(setup, loop_steps):
    loop, args = compiled_step_loop(setup, loop_steps)
    loops.append(_WatchedCalls(loop))
    return loops[-1], args

  monkeypatch.setattr(benchmark, "_compiled_step_loop", watched)
  figures = benchmark.profile_step(config, loop_steps=2, top=10)
  assert len(figures["top_ops"]) == 10 and figures["loop_steps"] == 2
  # One loop of 2 steps, called twice: a warm-up call, then the traced one.
  (loop,) = loops
  assert len(loop.seconds) == 2
  # The reported wall time holds the traced call (rounded to 0.1 ms) and little more: the calls
  # around it run under the profiler's Python tracer, which slows them by a few ms; the trace's
  # collection and writing (hundreds of ms) would be far outside.
  call_ms = loop.seconds[1] * 1e3 / 2
  assert call_ms - 0.05 <= figures["wall_ms_per_step"] <= call_ms * 1.3 + 2
  # The wall time per step holds the step's ops: no op takes longer than its step, and the ops of
  # a step, run at most os.cpu_count() at a time, take no more than that many step times.
  assert figures["top_ops"][0]["ms_per_step"] <= figures["wall_ms_per_step"]
  assert figures["op_ms_per_step"] <= figures["wall_ms_per_step"] * (os.cpu_count() or 1) + 0.01
  times = [op["ms_per_step"] for op in figures["top_ops"]]
  assert times == sorted(times, reverse=True) and times[-1] > 0
  # Each kind and the total are rounded to 0.01 ms: the parts add up within half of that each.
  kinds = figures["by_kind"]
  assert abs(sum(kinds.values()) - figures["op_ms_per_step"]) <= 0.005 * (len(kinds) + 1) + 1e-9
  assert all(op["shape"].startswith(("f32[", "s32[", "pred[", "(")) for op in figures["top_ops"])
  assert any("DAIMRN" in op["source"] for op in figures["top_ops"])


def _host_sleeps(durations, seen):
  """A compiled (state, x) -> state + x whose calls take the given seconds in turn (a host
  callback sleeps them) and record the state each call gets in `seen`."""
  durations = iter(durations)

  def host(state):
    seen.append(float(state))
    time.sleep(next(durations))
    return state

  def step(state, x):
    return jax.pure_callback(host, jax.ShapeDtypeStruct((), jnp.float32), state) + x

  return jax.jit(step).lower(jnp.float32(0), jnp.float32(1)).compile()


def test_timers_measure_blocked_calls_after_their_warm_up():
  """_timed (train steps, inference, the matmul ceiling): the median of `steps` calls after
  `warmup` ones; chain=True feeds each call the previous call's state. _seconds (epoch mode): the
  mean of `repeats` calls after one. Both block on the result: asynchronous dispatch returns at
  once, so a timer that did not block would report far less than the call takes."""
  seen = []
  calls = _host_sleeps([0.3, 0.3, 0.05, 0.02, 0.2], seen)  # 2 warm-up calls, then 3 timed
  state = jnp.float32(0)
  median = benchmark._timed(calls, (state, jnp.float32(1)), steps=3, warmup=2, chain=True)
  assert 0.05 <= median < 0.075  # the median (the mean is 0.09; all five: 0.2)
  assert seen == [0, 1, 2, 3, 4] and float(state) == 0  # chained on a copy of the caller's state
  calls = _host_sleeps([0.3, 0.02, 0.05, 0.17], [])  # 1 warm-up call, then 3
  mean = benchmark._seconds(lambda: calls(jnp.float32(0), jnp.float32(1)), repeats=3)
  assert 0.08 <= mean < 0.1  # the mean (the median is 0.05; all four: 0.135)

  # Usage: each timed call maps 64 MiB afresh (an anonymous mapping of its own: a numpy array of
  # that size comes from malloc, which after other tests in the process may hand back memory
  # already touched) and touches every page of it, so each call faults at least once per page:
  # 32 pages of 2 MiB if the kernel backs it with huge pages, 16,384 of 4 KiB if not.
  def fresh():
    block = mmap.mmap(-1, 64 << 20)
    pages = np.frombuffer(block, np.uint8)
    pages[::4096] = 1
    del pages  # the buffer must be released before the mapping is closed
    block.close()
    return jnp.float32(0)

  usage = {}
  benchmark._seconds(fresh, repeats=2, usage=usage)
  assert usage["page_faults"] >= (64 << 20) // (2 << 20) and usage["sys_s"] >= 0

  # Blocking: a program that runs asynchronously (no host callback), timed here call by call.
  def chain(a):
    return jax.lax.fori_loop(0, 8, lambda _, a: jnp.tanh(a @ a), a)

  a = jnp.full((512, 512), 1e-3, jnp.float32)
  compiled = jax.jit(chain).lower(a).compile()
  jax.block_until_ready(compiled(a))
  own = []
  for _ in range(3):
    start = time.perf_counter()
    jax.block_until_ready(compiled(a))
    own.append(time.perf_counter() - start)
  assert benchmark._timed(compiled, (a,), steps=3, warmup=1) > 0.2 * min(own)
  assert benchmark._seconds(lambda: compiled(a), repeats=3) > 0.2 * min(own)


def test_ceiling_mode_reports_the_matmul_rate_from_xlas_flops(monkeypatch):
  """The ceiling's rate is the square matmul's FLOPs, 2 n^3 (XLA's count must be that), over
  the time _timed measured for that n x n matmul (the real timer, watched)."""
  timings = []
  timed = benchmark._timed

  def watched(compiled, args, steps, warmup, chain=False):
    seconds = timed(compiled, args, steps, warmup, chain)
    timings.append(([arg.shape for arg in args], steps, seconds))
    return seconds

  monkeypatch.setattr(benchmark, "_timed", watched)
  figures = benchmark.matmul_ceiling(sizes=(32, 64), repeats=3)
  assert [(shapes, steps) for shapes, steps, _ in timings] == [
      ([(32, 32), (32, 32)], 3), ([(64, 64), (64, 64)], 3)]
  rates = {str(n): round(2 * n ** 3 / seconds / 1e9, 1)
           for n, (_, _, seconds) in zip((32, 64), timings)}
  assert figures["matmul_gflop_per_s"] == rates
  assert figures["best_gflop_per_s"] == max(rates.values())
