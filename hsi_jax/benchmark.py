"""Throughput of a config's network: one jitted train step (batch `train.batch_size`) and inference.

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


def benchmark(config, steps: int = 10, warmup: int = 2, infer_batch: int = 64) -> dict:
  scene = scenes.get_scene(config.scene)
  patch, batch = config.split.patch, config.train.batch_size
  model = models.build_model(config.model, scene.num_classes)
  optimizer = state_lib.make_optimizer(config.train, steps_per_epoch=100)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(0, 1, (batch, patch, patch, scene.num_bands)), jnp.float32)
  y = jnp.asarray(rng.integers(0, scene.num_classes + 1, (batch, patch, patch)), jnp.int32)
  state = state_lib.init_state(model, optimizer, jax.random.key(0), x[:1])

  train_step = step_lib.make_train_step(model, optimizer, config.train)
  weight = jnp.ones((batch,), jnp.float32)

  def infer(variables, x):
    return jnp.argmax(model.apply(variables, x, train=False), -1)

  train_seconds, train_flops = _timed(train_step, (state, x, y, weight), steps, warmup)
  x_infer = jnp.asarray(rng.uniform(0, 1, (infer_batch, patch, patch, scene.num_bands)),
                        jnp.float32)
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  infer_seconds, infer_flops = _timed(infer, (variables, x_infer), steps, warmup)
  return dict(
      scene=config.scene, model=config.model.name, num_params=state_lib.count_params(state),
      batch_size=batch, patches_per_s=round(batch / train_seconds, 2),
      infer_patches_per_s=round(infer_batch / infer_seconds, 2),
      train_gflop_per_patch=round(train_flops / batch / 1e9, 3),
      train_gflop_per_s=round(train_flops / train_seconds / 1e9, 1),
      infer_gflop_per_s=round(infer_flops / infer_seconds / 1e9, 1),
      device=jax.devices()[0].device_kind, num_devices=jax.device_count(),
      fast_conv=bool(config.model.fast_conv), steps=steps)
