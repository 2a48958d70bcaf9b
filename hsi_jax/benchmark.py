"""Throughput of a config's network: one jitted train step (batch `train.batch_size`) and inference.

DA-IMRN steps take p x p windows; the SSAN family's take (spectrum, PCA patch) pairs.

Random inputs of the scene's shape (the cube is not needed). Times are per call with the result
blocked on, the first `warmup` calls (compilation) excluded; the median is reported. FLOPs come from
XLA's own cost analysis of the compiled programs.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from hsi_jax import models
from hsi_jax.data import scenes
from hsi_jax.train import state as state_lib
from hsi_jax.train import pixel_step
from hsi_jax.train import step as step_lib


def _timed(fn, args, steps: int, warmup: int) -> tuple[float, float]:
  """(median seconds per call, XLA flops per call)."""
  compiled = jax.jit(fn).lower(*args).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  times = []
  for i in range(warmup + steps):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    if i >= warmup:
      times.append(time.perf_counter() - start)
  return statistics.median(times), float(cost.get("flops", float("nan")))


def _window_inputs(config, scene, batch, rng):
  """DA-IMRN: p x p x B windows with per-pixel labels (0 = unlabelled)."""
  patch = config.split.patch
  x = jnp.asarray(rng.uniform(0, 1, (batch, patch, patch, scene.num_bands)), jnp.float32)
  y = jnp.asarray(rng.integers(0, scene.num_classes + 1, (batch, patch, patch)), jnp.int32)
  return (x,), (y, jnp.ones((batch,), jnp.float32))


def _pixel_inputs(config, scene, batch, rng):
  """SSAN family: spectra (N, B), S x S x K PCA patches, class indices, a dropout key."""
  size, components = config.data.neighbourhood, config.data.pca_components
  spectrum = jnp.asarray(rng.uniform(0, 1, (batch, scene.num_bands)), jnp.float32)
  patch = jnp.asarray(rng.uniform(0, 1, (batch, size, size, components)), jnp.float32)
  classes = jnp.asarray(rng.integers(0, scene.num_classes, (batch,)), jnp.int32)
  return (spectrum, patch), (classes, jax.random.key(1))


def benchmark(config, steps: int = 10, warmup: int = 2, infer_batch: int = 64) -> dict:
  name = config.model.name
  if name not in models.NEURAL:
    raise ValueError(f"bench times networks; {name!r} is a scikit-learn baseline.")
  scene = scenes.get_scene(config.scene)
  batch = config.train.batch_size
  model = models.build_model(config.model, scene.num_classes)
  optimizer = state_lib.make_optimizer(config.train, steps_per_epoch=100)
  rng = np.random.default_rng(0)
  if name == "da_imrn":
    make_inputs, train_step = _window_inputs, step_lib.make_train_step(model, optimizer, config.train)
  else:
    make_inputs, train_step = _pixel_inputs, pixel_step.make_pixel_train_step(model, optimizer)
  inputs, targets = make_inputs(config, scene, batch, rng)
  state = state_lib.init_state(model, optimizer, jax.random.key(0),
                               tuple(x[:1] for x in inputs))

  def infer(variables, inputs):
    return jnp.argmax(model.apply(variables, *inputs, train=False), -1)

  train_seconds, train_flops = _timed(train_step, (state, *inputs, *targets), steps, warmup)
  infer_inputs, _ = make_inputs(config, scene, infer_batch, rng)
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  infer_seconds, infer_flops = _timed(infer, (variables, infer_inputs), steps, warmup)
  return dict(
      scene=config.scene, model=name, num_params=state_lib.count_params(state),
      batch_size=batch, patches_per_s=round(batch / train_seconds, 2),
      infer_patches_per_s=round(infer_batch / infer_seconds, 2),
      train_gflop_per_patch=round(train_flops / batch / 1e9, 3),
      train_gflop_per_s=round(train_flops / train_seconds / 1e9, 1),
      infer_gflop_per_s=round(infer_flops / infer_seconds / 1e9, 1),
      device=jax.devices()[0].device_kind, num_devices=jax.device_count(),
      fast_conv=bool(config.model.fast_conv), steps=steps)
