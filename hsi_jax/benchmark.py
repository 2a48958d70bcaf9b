"""Throughput of a config's network: one jitted train step (batch `train.batch_size`) and inference.

DA-IMRN steps take p x p windows; the SSAN family's take (spectrum, PCA patch) pairs.

Random inputs of the scene's shape (the cube is not needed). Times are per call with the result
blocked on, the first `warmup` calls (compilation) excluded; the median is reported. FLOPs come from
XLA's own cost analysis of the programs, and for DA-IMRN on the official scenes also from the
counted FLOPs of docs/design.md ("Performance notes"; the peer ratio's inputs).
"""

from __future__ import annotations

import collections
import functools
import pathlib
import re
import resource
import statistics
import tempfile
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax.sharding import NamedSharding, PartitionSpec as P

from hsi_jax import (bundle as bundle_lib, families, inference, loop as loop_lib, models,
                     parallel, predict as predict_lib, seeds)
from hsi_jax.data import io, patches, rasters, split_sources
from hsi_jax.families import pixels
from hsi_jax.models import da_imrn
from hsi_jax.train import optim, pixel_step, state as state_lib, step as step_lib


def _timed(compiled, args, steps: int, warmup: int, chain: bool = False) -> float:
  """Median seconds per call of a compiled function. chain=True: compiled(state, ...) -> state,
  with the state donated: each call gets the previous call's state."""
  if chain:
    args = (jax.tree.map(jnp.copy, args[0]), *args[1:])  # the caller's state is not donated
  times = []
  for i in range(warmup + steps):
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    if i >= warmup:
      times.append(time.perf_counter() - start)
    if chain:
      args = (out, *args[1:])
  return statistics.median(times)


def _flops(fn, args) -> float:
  """XLA's FLOP count of one call of fn (its cost analysis of the lowered program)."""
  cost = jax.jit(fn).lower(*args).cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan")))


def _step_loop(train_step, length: int):
  """(state, *batch) -> state after `length` train steps on the batch, under lax.scan: steps run
  as an epoch runs them (XLA's CPU backend runs a loop body faster than the same step called on
  its own, which allocates every buffer again)."""
  def loop(state, *batch):
    return jax.lax.scan(lambda state, _: (train_step(state, *batch)[0], None), state, None,
                        length=length)[0]
  return loop


# Forward + backward FLOPs per patch of DA-IMRN counted layer by layer (docs/design.md,
# "Performance notes"; separate branches, padded taps included): what the peers' GFLOP/s are
# reported against.
COUNTED_GFLOP_PER_PATCH = {"ip": 2.55, "pu": 40.6, "sv": 40.2}
# The branch kernels (spatial, spectral) of the official networks those counts are of: the
# paper's multi-scale ones, but a single (1, 1, 1) spatial branch on IP (the code's).
COUNTED_BRANCH_KERNELS = {
    "ip": (((1, 1, 1),), da_imrn.SPECTRAL_KERNELS),
    **{scene: (da_imrn.SPATIAL_KERNELS, da_imrn.SPECTRAL_KERNELS) for scene in ("pu", "sv")}}


def _counted(config, patches_per_s: float) -> dict:
  """Counted GFLOP/s, for the official network only (full width, every module, the official
  branch kernels: IP's code spatial block)."""
  model = config.model
  official = (model.name == "da_imrn" and config.scene in COUNTED_GFLOP_PER_PATCH
              and model.width == 1.0 and model.multiscale and model.use_scam and model.use_sam
              and model.interact
              and tuple(tuple(tuple(k) for k in model[leaf]) for leaf in (
                  "spatial_kernels", "spectral_kernels")) == COUNTED_BRANCH_KERNELS[config.scene])
  if not official:
    return {}
  gflop = COUNTED_GFLOP_PER_PATCH[config.scene]
  return dict(counted_gflop_per_patch=gflop, counted_gflop_per_s=round(gflop * patches_per_s, 1))


def _window_inputs(config, scene, batch, rng):
  """DA-IMRN: p x p x B windows with per-pixel labels (0 = unlabelled)."""
  patch = config.split.patch
  x = jnp.asarray(rng.uniform(0, 1, (batch, patch, patch, scene.num_bands)), jnp.float32)
  y = jnp.asarray(rng.integers(0, scene.num_classes + 1, (batch, patch, patch)), jnp.int32)
  return (x,), (y, jnp.ones((batch,), jnp.float32))


def _pixel_inputs(config, scene, batch, rng):
  """Pixels family: spectra (N, B), S x S x K patches, class indices, a dropout key."""
  size, components = config.data.neighbourhood, pixels.patch_channels(config, scene.num_bands)
  spectrum = jnp.asarray(rng.uniform(0, 1, (batch, scene.num_bands)), jnp.float32)
  patch = jnp.asarray(rng.uniform(0, 1, (batch, size, size, components)), jnp.float32)
  classes = jnp.asarray(rng.integers(0, scene.num_classes, (batch,)), jnp.int32)
  return (spectrum, patch), (classes, jax.random.key(1))


class _StepSetup(NamedTuple):
  model: Any
  train_step: Callable  # (state, *inputs, *targets) -> (state, metrics)
  make_inputs: Callable  # (config, scene, batch, rng) -> (inputs, targets)
  state: Any
  inputs: tuple
  targets: tuple
  jit: Callable  # jax.jit with the run's compiler options


def _step_setup(config) -> _StepSetup:
  """The config's network, state and one random batch (random inputs of the scene's shape), and
  jax.jit with the run's compiler options."""
  name = config.model.name
  if not families.is_neural(name):
    raise ValueError(f"bench times networks; {name!r} is a scikit-learn baseline.")
  scene = io.scene_of(config)
  forms = models.conv_forms(jax.devices()[0].platform, config.model.fast_conv)  # jit's device
  model = models.build_model(config.model, scene.num_classes, forms)
  optimizer = optim.make_optimizer(config.train)
  if families.family_of(name) is families.windows:
    make_inputs, train_step = _window_inputs, step_lib.make_train_step(model, optimizer, config.train)
  else:
    make_inputs, train_step = _pixel_inputs, pixel_step.make_pixel_train_step(
        model, optimizer, config.train.get("kernel_l2", 0.0))
  inputs, targets = make_inputs(config, scene, config.train.batch_size, np.random.default_rng(0))
  state = state_lib.init_state(model, optimizer, jax.random.key(0),
                               tuple(x[:1] for x in inputs))
  jit = functools.partial(jax.jit, compiler_options=models.compiler_options(config.model, forms))
  return _StepSetup(model, train_step, make_inputs, state, inputs, targets, jit)


def forward_flops(config) -> float:
  """XLA's FLOP count of the network's forward pass (inference mode, plain convolutions) on one
  input patch: a pixel model's spectrum and S x S neighbourhood (one pixel classified), DA-IMRN's
  p x p window (its p * p pixels classified at once)."""
  scene = io.scene_of(config)
  model_config = config.model.copy_and_resolve_references()
  model_config.fast_conv = False
  model = models.build_model(model_config, scene.num_classes, models.conv_forms("cpu", False))
  windowed = families.family_of(config.model.name) is families.windows
  inputs, _ = (_window_inputs if windowed else _pixel_inputs)(config, scene, 1,
                                                             np.random.default_rng(0))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), *inputs, train=False))
  return _flops(lambda v, x: model.apply(v, *x, train=False), (variables, inputs))


def _compiled_step_loop(setup: _StepSetup, loop_steps: int):
  """(the compiled loop of `loop_steps` train steps with the state donated, its arguments
  (state, *inputs, *targets))."""
  args = (setup.state, *setup.inputs, *setup.targets)
  loop = setup.jit(_step_loop(setup.train_step, loop_steps), donate_argnums=0)
  return loop.lower(*args).compile(), args


def benchmark(config, steps: int = 10, warmup: int = 2, infer_batch: int = 64,
              loop_steps: int = 8) -> dict:
  """Train step (batch train.batch_size) and inference (batch infer_batch) of the config's network.
  A timed train call is `loop_steps` steps in one program (_step_loop); `steps` timed calls of
  each after `warmup` ones, median. Counted FLOPs (forward + backward per patch, docs/design.md) give
  the achieved GFLOP/s for DA-IMRN on the official scenes."""
  setup = _step_setup(config)
  batch = config.train.batch_size

  def infer(variables, inputs):
    return jnp.argmax(setup.model.apply(variables, *inputs, train=False), -1)

  loop, args = _compiled_step_loop(setup, loop_steps)
  train_seconds = _timed(loop, args, steps, warmup, chain=True) / loop_steps
  train_flops = _flops(setup.train_step, args)
  infer_inputs, _ = setup.make_inputs(config, io.scene_of(config), infer_batch,
                                      np.random.default_rng(1))
  infer_args = (setup.state.variables, infer_inputs)
  infer_seconds = _timed(setup.jit(infer).lower(*infer_args).compile(), infer_args, steps,
                         warmup)
  infer_flops = _flops(infer, infer_args)
  return dict(
      scene=config.scene, model=config.model.name, num_params=state_lib.count_params(setup.state),
      batch_size=batch, patches_per_s=round(batch / train_seconds, 2),
      infer_patches_per_s=round(infer_batch / infer_seconds, 2),
      train_gflop_per_patch=round(train_flops / batch / 1e9, 3),
      train_gflop_per_s=round(train_flops / train_seconds / 1e9, 1),
      infer_gflop_per_s=round(infer_flops / infer_seconds / 1e9, 1),
      device=jax.devices()[0].device_kind, num_devices=jax.device_count(),
      fast_conv=bool(config.model.fast_conv), steps=steps, loop_steps=loop_steps,
      **_counted(config, batch / train_seconds))


def profile_step(config, loop_steps: int = 4, top: int = 25) -> dict:
  """Where a train step's time goes, op by op: one call of the step loop (_step_loop, after a
  warm-up call) under jax.profiler.trace, the trace read back with jax.profiler.ProfileData.
  Returns the wall time per step, the summed op time per step by op kind (the op name without its
  number: ynn_fusion = XNNPACK matmuls and convolutions, *_fusion = XLA's fused elementwise
  loops), and the `top` ops by time with their output shape and the model code they come from
  (the op's metadata). Ops of independent branches run side by side on the CPU's threads, so
  the op times can sum to more than the wall time."""
  setup = _step_setup(config)
  loop, args = _compiled_step_loop(setup, loop_steps)
  state = jax.block_until_ready(loop(jax.tree.map(jnp.copy, setup.state), *args[1:]))
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir):  # the call's own time, not the trace's writing
      start = time.perf_counter()
      jax.block_until_ready(loop(state, *args[1:]))
      wall = time.perf_counter() - start
    trace_file, = pathlib.Path(trace_dir).rglob("*.xplane.pb")
    profile = jax.profiler.ProfileData.from_file(str(trace_file))
  ops = _op_descriptions(loop.as_text())
  op_ns = collections.Counter()  # events named after the program's ops (not the runtime's own)
  for plane in profile.planes:
    for line in plane.lines:
      for event in line.events:
        if event.name in ops:
          op_ns[event.name] += event.duration_ns
  per_step = lambda ns: round(ns / 1e6 / loop_steps, 2)  # noqa: E731
  kinds = collections.Counter()
  for name, ns in op_ns.items():
    kinds[re.sub(r"\.\d+$", "", name)] += ns
  return dict(
      scene=config.scene, model=config.model.name, batch_size=config.train.batch_size,
      loop_steps=loop_steps, wall_ms_per_step=round(wall * 1e3 / loop_steps, 1),
      op_ms_per_step=per_step(sum(op_ns.values())),
      by_kind={kind: per_step(ns) for kind, ns in kinds.most_common()},
      top_ops=[dict(op=name, ms_per_step=per_step(ns), **ops[name])
               for name, ns in op_ns.most_common(top)],
      device=jax.devices()[0].device_kind)


def _op_descriptions(program_text: str) -> dict:
  """op name -> {shape, source} from a compiled program's text (its output type, and the jax
  operation it was lowered from)."""
  ops = {}
  for line in program_text.splitlines():
    match = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (\S+) ", line)
    if match and match.group(1) not in ops:
      source = re.search(r'op_name="([^"]+)"', line)
      ops[match.group(1)] = dict(shape=match.group(2).split("{")[0],
                                 source=source.group(1) if source else "")
  return ops


def matmul_ceiling(sizes=(512, 1024, 2048), repeats: int = 10) -> dict:
  """The device's float32 matmul rate on square n x n matrices (XLA's FLOPs, 2 n^3, over the
  median time of a call): the ceiling for a network's achieved GFLOP/s on this device, and with
  a program's FLOPs the least time any schedule of it can take."""
  rng = np.random.default_rng(0)
  rates = {}
  for n in sizes:
    a, b = (jnp.asarray(rng.normal(size=(n, n)), jnp.float32) for _ in range(2))
    matmul = jax.jit(jnp.matmul).lower(a, b).compile()
    seconds = _timed(matmul, (a, b), repeats, warmup=2)
    rates[str(n)] = round(_flops(jnp.matmul, (a, b)) / seconds / 1e9, 1)
  return dict(matmul_gflop_per_s=rates, best_gflop_per_s=max(rates.values()),
              device=jax.devices()[0].device_kind, num_devices=1)


def _seconds(fn, repeats: int, usage: dict | None = None) -> float:
  """Mean wall seconds of fn() (results blocked on) over `repeats` calls after one warm-up call.
  `usage`, when given, receives the process's minor page faults and system CPU seconds per timed
  call (all threads): on the CPU, memory an execution allocates afresh is zero-filled by the
  kernel page by page (results/bench.md, "The chunked round on the CPU")."""
  jax.block_until_ready(fn())
  before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(fn())
  seconds = time.perf_counter() - start
  if usage is not None:
    after = resource.getrusage(resource.RUSAGE_SELF)
    usage.update(page_faults=round((after.ru_minflt - before.ru_minflt) / repeats),
                 sys_s=round((after.ru_stime - before.ru_stime) / repeats, 2))
  return seconds / repeats


def _program(config, scene, split, num_seeds: int):
  """The run's program for num_seeds copies of one partition (padded to the mesh), and its keys."""
  mesh = parallel.make_mesh(seeds=parallel.seeds_axis(num_seeds, jax.device_count()))
  padded = num_seeds + (-num_seeds % mesh.shape["seeds"])
  program = families.family_of(config.model.name).make_program(config, scene, [split] * padded,
                                                               mesh)
  keys = jax.random.split(jax.random.key(config.seed), padded)
  return program, keys, mesh


def benchmark_seeds(config, num_seeds: int, rounds: int = 2) -> dict:
  """K init seeds over one partition: the run's vmapped program over K seeds vs K single-seed
  programs run one after another (the same work), on the real scene; compilation excluded (one
  warm-up round each). A single run shards its batch over every device, so the patches/s of runs
  with 1 and N devices compare data-parallel throughput."""
  scene = io.load_config_scene(config)
  split, _, _ = split_sources.split_from_config(config, labels=scene)
  learning_rate = optim.round_learning_rate(config.train, 0)
  single, single_keys, _ = _program(config, scene, split, 1)
  many_keys = jax.random.split(single_keys[0], num_seeds)
  states = [single.init(key[None]) for key in many_keys]

  def sequential():
    for k in range(num_seeds):
      states[k], metrics = loop_lib.train_round(single, states[k], many_keys[k][None],
                                                learning_rate)
    return metrics

  together, keys, mesh = _program(config, scene, split, num_seeds)
  vmapped_states = [together.init(keys)]

  def vmapped():
    vmapped_states[0], metrics = loop_lib.train_round(together, vmapped_states[0], keys,
                                                      learning_rate)
    return metrics

  sequential_s, vmapped_s = _seconds(sequential, rounds), _seconds(vmapped, rounds)
  examples = single.steps_per_round * single.batch_size
  return dict(scene=config.scene, model=config.model.name, num_seeds=num_seeds,
              round=single.round_name, examples_per_round=examples,
              sequential_s_per_round=round(sequential_s, 3),
              vmapped_s_per_round=round(vmapped_s, 3),
              single_run_patches_per_s=round(num_seeds * examples / sequential_s, 1),
              vmapped_patches_per_s=round(num_seeds * examples / vmapped_s, 1),
              speedup=round(sequential_s / vmapped_s, 2), mesh=dict(mesh.shape),
              device=jax.devices()[0].device_kind, num_devices=jax.device_count(), rounds=rounds)


def benchmark_epoch(config, rounds: int = 2) -> dict:
  """One round of the real run on the real scene, as run.run drives it: the compiled epoch program
  (its chunks, loop.train_round) and the validation predictions + accuracy, for one seed;
  compilation excluded (one warm-up round). Seconds, and the training round's page faults and
  system seconds, are means over `rounds`."""
  scene = io.load_config_scene(config)
  split, _, _ = split_sources.split_from_config(config, labels=scene)
  program, keys, _ = _program(config, scene, split, 1)
  learning_rate = optim.round_learning_rate(config.train, 0)
  states = [program.init(keys)]

  def train():
    states[0], metrics = loop_lib.train_round(program, states[0], keys, learning_rate)
    return metrics

  def validate():
    return program.val_accuracy(np.asarray(program.val_predictions(states[0], program.data)))

  train_usage = {}
  train_s, val_s = _seconds(train, rounds, train_usage), _seconds(validate, rounds)
  examples = program.steps_per_round * program.batch_size
  return dict(scene=config.scene, model=config.model.name, partition=config.partition,
              round=program.round_name, train_examples=examples,
              val_windows=int(program.data.val_origins.shape[1]),
              train_s=round(train_s, 2), val_s=round(val_s, 2), round_s=round(train_s + val_s, 2),
              train_patches_per_s=round(examples / train_s, 1),
              train_page_faults=train_usage["page_faults"], train_sys_s=train_usage["sys_s"],
              device=jax.devices()[0].device_kind, num_devices=jax.device_count(), rounds=rounds)


def benchmark_split(config, seeds=range(1, 6)) -> dict:
  """Seconds to make the config's split from the ground truth (accept loop included)."""
  gt = io.load_config_labels(config)
  times = []
  for seed in seeds:
    start = time.perf_counter()
    split_sources.split_from_config(config, partition=seed, labels=gt)
    times.append(time.perf_counter() - start)
  return dict(scene=config.scene, protocol=config.split.protocol, seeds=list(seeds),
              split_s_mean=round(statistics.mean(times), 3), split_s_max=round(max(times), 3))


def benchmark_inference(config, repeats: int = 2, tile: int = inference.DEFAULT_TILE) -> dict:
  """Seconds to label every pixel of the scene (the evaluation map, through the tiles of
  inference.py) with the initial state, compilation excluded."""
  scene = io.load_config_scene(config)
  split, _, _ = split_sources.split_from_config(config, labels=scene)
  program, keys, _ = _program(config, scene, split, 1)
  states = program.init(keys)
  family = families.family_of(config.model.name)
  bundle = bundle_lib.Bundle(dict(num_bands=scene.cube.shape[-1], class_ids=scene.class_ids),
                             **program.seed_bundle(states, 0))
  predictor = family.make_tile_predictor(config, scene.num_classes, family.make_mesh(config, 1))
  reader = rasters.ArrayReader(scene.cube)
  seconds = _seconds(lambda: inference.predict_map(reader, predictor, bundle, tile), repeats)
  return dict(scene=config.scene, model=config.model.name, pixels=int(scene.gt.size), tile=tile,
              full_scene_inference_s=round(seconds, 3), device=jax.devices()[0].device_kind,
              num_devices=jax.device_count())


def step_losses(config, steps: int, ulp: bool = False) -> dict:
  """DA-IMRN: the loss of each of the first `steps` optimiser steps of the run's first epoch (its
  own example order, batches sharded over every device), to compare how far two float-level
  variants of the same run drift apart: N devices vs 1, or (ulp=True) the initial parameters moved
  up by one unit in the last place. docs/design.md ("Devices and float drift") reads these."""
  if families.family_of(config.model.name) is not families.windows:
    raise ValueError("step_losses follows the DA-IMRN epoch; use a da_imrn config.")
  scene = io.load_config_scene(config)
  split, _, _ = split_sources.split_from_config(config, labels=scene)
  host = families.windows.seed_data(config, scene.cube, split, families.windows.fit_preprocessing(
      config, scene.cube, split))
  mesh = parallel.make_mesh()
  patch, batch = config.split.patch, config.train.batch_size
  forms = models.conv_forms(mesh.devices.flat[0].platform, config.model.fast_conv)
  model = models.build_model(config.model, scene.num_classes, forms)
  optimizer = optim.make_optimizer(config.train)
  key = jax.random.key(config.seed)
  state = state_lib.init_state(model, optimizer, jax.random.fold_in(key, 0),
                               (jnp.zeros((1, patch, patch, scene.cube.shape[-1])),))
  if ulp:
    state = state.replace(params=jax.tree.map(lambda p: jnp.nextafter(p, jnp.inf), state.params))
  state = parallel.replicate(state, mesh)
  num_windows = int(host.num_windows)
  augment = families.windows.uses_augmentation(config, split)
  examples = (2 if augment else 1) * num_windows
  order = np.asarray(step_lib.epoch_order(seeds.round_key(key, 0), examples, examples))
  sharding = NamedSharding(mesh, P("data"))
  train_step = jax.jit(step_lib.make_train_step(model, optimizer, config.train),
                       compiler_options=models.compiler_options(config.model, forms))
  cube = jnp.asarray(host.cube)
  losses = []
  for start in range(0, min(steps * batch, examples - batch + 1), batch):
    example = order[start:start + batch]
    window = example % num_windows
    flip = jnp.asarray(np.where(example >= num_windows, host.train_flips[window], -1))
    x = patches.flip(patches.gather(cube, jnp.asarray(host.train_origins[window]), patch), flip)
    y = patches.flip(jnp.asarray(host.train_labels[window]), flip)
    x, y, weight = jax.device_put((x, y, jnp.ones(batch)), sharding)
    state, (loss_sum, _, pixels) = train_step(state, x, y, weight)
    losses.append(float(loss_sum / pixels))
  return dict(scene=config.scene, model=config.model.name, optimizer=config.train.optimizer,
              ulp=ulp, num_devices=jax.device_count(), losses=losses)


def write_synthetic_cube(path, height: int, width: int, seed: int = 0,
                         block_rows: int = 256) -> dict:
  """A (height, width, 200) int16 GeoTIFF for the prediction benchmark: Indian Pines' cube
  repeated across the grid, each pixel with Gaussian noise of 2 % of the scene's range (drawn per
  row block from one numpy Generator), written block by block (memory of a block, not the cube)."""
  source = io.load_scene("ip").cube
  low, high = float(source.min()), float(source.max())
  rng = np.random.default_rng(seed)
  src_h, src_w, bands = source.shape

  def make_block(r0: int, r1: int) -> np.ndarray:
    rows = np.arange(r0, r1) % src_h
    cols = np.arange(width) % src_w
    block = source[rows[:, None], cols[None, :]].astype(np.float32)
    block += rng.normal(0.0, 0.02 * (high - low), block.shape).astype(np.float32)
    return np.clip(np.rint(block), -32768, 32767).astype(np.int16)

  rasters.write_cube_blocks(path, (height, width, bands), np.int16, make_block,
                            block_rows=block_rows)
  return dict(path=str(path), shape=[height, width, bands], dtype="int16",
              bytes=pathlib.Path(path).stat().st_size, seed=seed)


def peak_resident_bytes() -> int:
  """This process's peak resident memory so far (Linux ru_maxrss, in KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def benchmark_predict(workdir, cube, out, in_memory: bool = False,
                      tile: int = inference.DEFAULT_TILE) -> dict:
  """launch/predict.py's work on `cube` as a user runs it (predict.predict: tiles read from the
  file, the map written as it goes) or, in_memory, the cube first read whole as float32 and the
  same tiles classified from memory. Seconds include each path's one compile; run each path in its
  own process, since the peak resident memory is the process's."""
  start_rss = peak_resident_bytes()
  if not in_memory:
    summary = predict_lib.predict(workdir, cube, out, tile=tile)
    seconds, read_seconds, pixels = summary["seconds"], 0.0, int(np.prod(summary["shape"][:2]))
  else:
    _, bundle, _, predictor = predict_lib.load_predictor(pathlib.Path(workdir), None)
    start = time.perf_counter()
    with io.open_cube(cube) as reader:
      height, width, _ = reader.info.shape
      whole = reader.read((0, height), (0, width)).astype(np.float32, copy=False)
    read_seconds = time.perf_counter() - start
    start = time.perf_counter()
    inference.predict_map(rasters.ArrayReader(whole), predictor, bundle, tile)
    seconds, pixels = time.perf_counter() - start, height * width
  return dict(path="in_memory" if in_memory else "tiles_from_file", cube=str(cube),
              pixels=pixels, tile=tile, seconds=round(seconds, 2),
              read_whole_seconds=round(read_seconds, 2),
              pixels_per_second=round(pixels / seconds, 1),
              peak_rss_gb=round(peak_resident_bytes() / 2**30, 3),
              rss_before_gb=round(start_rss / 2**30, 3),
              device=jax.devices()[0].device_kind)
