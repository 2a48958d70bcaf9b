"""What the training loop needs from a model family, built from (config, scene, split).

Two families: `window_task` (DA-IMRN: every pixel of p x p windows, epochs over the partition's
windows) and `pixel_task` (SSAN and its rows: centre-pixel classification, rounds of
`train.eval_every` iterations). Both put their data on the device once and return a `Task` whose
functions take and return the train state; the loop (loop.py) only sequences rounds, validation,
checkpoints and early stopping. Keys: parameters from fold_in(seed key, 0), round r's example order
(and dropout) from fold_in(fold_in(seed key, 1), r).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from hsi_jax import models, parallel
from hsi_jax.data import io, patches, pixel_inputs, preprocess, splits as splits_lib
from hsi_jax.evaluate import predict as predict_lib
from hsi_jax.train import optim, pixel_step, progress, state as state_lib, step as step_lib


@dataclasses.dataclass(frozen=True)
class Task:
  init_state: Callable[[], state_lib.TrainState]        # replicated over the mesh
  train_round: Callable[[state_lib.TrainState, int], tuple[state_lib.TrainState, dict]]
  val_accuracy: Callable[[state_lib.TrainState], tuple[int, int]]  # (correct, counted)
  predict_map: Callable[[state_lib.TrainState], np.ndarray]         # (H, W) class ids 1..C
  compile_round: Callable[[state_lib.TrainState], None]  # compiles train_round ahead of time
  num_rounds: int
  steps_per_round: int
  batch_size: int
  step_progress: progress.StepProgress  # called from inside train_round after each step


def round_key(key, round_index: int):
  return jax.random.fold_in(jax.random.fold_in(key, 1), round_index)


def compiled_rounds(round_fn, key):
  """(compile(state, data), run(state, data, r)): round_fn (jitted) compiled ahead of time once,
  so that the compilation is timed apart from the first round."""
  compiled = {}

  def compile_round(state, data):
    compiled["round"] = round_fn.lower(state, data, round_key(key, 0)).compile()

  def run(state, data, r):
    return compiled.get("round", round_fn)(state, data, round_key(key, r))

  return compile_round, run


def make_task(config, scene: io.SceneData, split: splits_lib.Split, mesh) -> Task:
  if config.model.name == "da_imrn":
    return window_task(config, scene, split, mesh)
  return pixel_task(config, scene, split, mesh)


WINDOW_LABEL_RULES = ("block", "final_map")


def window_labels(config, split: splits_lib.Split) -> np.ndarray:
  """(N, p, p) labels each train window is trained on. `block` (faithful): the labels of the
  window's own block, as the split recorded them; `final_map`: the split's `train` map, where a
  later overlapping block decides whether a pixel is train or leaked."""
  rule = config.train.window_labels
  if rule == "block":
    return split.train_window_labels
  if rule == "final_map":
    return splits_lib.map_window_labels(split.train, split.train_windows, config.split.patch)
  raise ValueError(f"train.window_labels must be one of {WINDOW_LABEL_RULES}, got {rule!r}.")


def window_data(config, cube: np.ndarray, split: splits_lib.Split) -> step_lib.DeviceData:
  """DA-IMRN's inputs on the host (the scene padded by the window side p)."""
  patch = config.split.patch
  if config.data.standardize:
    cube = preprocess.standardize(cube, split.train)
  return step_lib.DeviceData(
      cube=patches.pad_scene(cube, patch), train_labels=window_labels(config, split),
      train_origins=splits_lib.window_origins(split.train_windows, patch),
      train_flips=split.train_flips, val_origins=splits_lib.window_origins(split.val_windows, patch),
      num_windows=np.int32(len(split.train_windows)))


def uses_augmentation(config, split: splits_lib.Split) -> bool:
  """train.augment, where the partition recorded a flip for every window (blocks does)."""
  return bool(config.train.augment) and bool(np.all(split.train_flips >= 0))


def window_task(config, scene, split, mesh) -> Task:
  """DA-IMRN on the partition's windows (PAPERS.md §1.7)."""
  patch = config.split.patch
  host_data = window_data(config, scene.cube, split)
  data = parallel.replicate(host_data, mesh)
  val_labels = patches.pad_scene(split.val, patch)
  augment = uses_augmentation(config, split)
  model = models.build_model(config.model, scene.num_classes)
  make_optimizer = functools.partial(optim.make_optimizer, config.train)
  optimizer = make_optimizer(1)  # the state's structure; the schedule comes in train_epoch
  key = jax.random.key(config.seed)
  step_progress = progress.StepProgress()
  train_epoch = step_lib.make_train_epoch(model, make_optimizer, config.train, patch, mesh, augment,
                                          on_step=step_progress)
  compile_round, run_round = compiled_rounds(train_epoch, key)
  predict = step_lib.make_predict(model, patch, mesh, config.train.eval_batch_size)

  def init_state():
    example = jnp.zeros((1, patch, patch, scene.cube.shape[-1]), jnp.float32)
    return parallel.replicate(state_lib.init_state(model, optimizer, jax.random.fold_in(key, 0),
                                                   (example,)), mesh)

  def val_accuracy(state):
    predictions = np.asarray(predict(state.variables, data.cube, data.val_origins))
    return step_lib.window_accuracy(predictions, val_labels, host_data.val_origins, patch,
                                    config.train.val_metric)

  def predict_map(state):
    origins, num_grid = predict_lib.scene_tiles(scene.gt.shape, patch)
    tiles = np.asarray(predict(state.variables, data.cube, origins))
    return predict_lib.assemble(tiles, origins, num_grid, scene.gt.shape)

  return Task(init_state=init_state, train_round=lambda state, r: run_round(state, data, r),
              val_accuracy=val_accuracy, predict_map=predict_map,
              compile_round=lambda state: compile_round(state, data),
              num_rounds=config.train.epochs,
              steps_per_round=step_lib.epoch_steps(len(split.train_windows), augment,
                                                   config.train.batch_size),
              batch_size=config.train.batch_size, step_progress=step_progress)


def pixel_data(config, cube: np.ndarray, split: splits_lib.Split):
  """(PixelData on the host, val classes (M,) 1..C): the pixel models' inputs (pixel_inputs)."""
  size = config.data.neighbourhood
  inputs = pixel_inputs.make_pixel_inputs(cube, split, config.data.pca_components,
                                          config.data.fit_stats)
  train_pixels = np.argwhere(split.train > 0).astype(np.int32)
  val_pixels = np.argwhere(split.val > 0).astype(np.int32)
  if len(val_pixels) == 0:
    raise ValueError("The pixel models choose their best checkpoint on validation pixels; this "
                     "split has none (set split.val_per_class > 0).")
  data = pixel_step.PixelData(
      spectra=inputs.spectra, pca=patches.pad_scene(inputs.pca, size),
      train_pca=patches.pad_scene(inputs.training_pca(), size), train_pixels=train_pixels,
      train_classes=split.train[split.train > 0].astype(np.int32) - 1, val_pixels=val_pixels)
  return data, split.val[split.val > 0]


def pixel_task(config, scene, split, mesh) -> Task:
  """SSAN and its comparison rows (PAPERS.md §2.4) on the split's train / val pixels."""
  size = config.data.neighbourhood
  host_data, val_classes = pixel_data(config, scene.cube, split)
  data = parallel.replicate(host_data, mesh)
  model = models.build_model(config.model, scene.num_classes)
  steps = config.train.eval_every
  if config.train.steps % steps:
    raise ValueError(f"train.steps ({config.train.steps}) must be a multiple of train.eval_every "
                     f"({steps}).")
  optimizer = optim.make_optimizer(config.train, steps)
  key = jax.random.key(config.seed)
  step_progress = progress.StepProgress()
  train_round = pixel_step.make_pixel_train_round(model, optimizer, config.train.batch_size, steps,
                                                  size, mesh, on_step=step_progress)
  compile_round, run_round = compiled_rounds(train_round, key)
  predict = pixel_step.make_pixel_predict(model, size, mesh, config.train.eval_batch_size)

  def init_state():
    example = (jnp.zeros((1, scene.cube.shape[-1]), jnp.float32),
               jnp.zeros((1, size, size, config.data.pca_components), jnp.float32))
    return parallel.replicate(state_lib.init_state(model, optimizer, jax.random.fold_in(key, 0),
                                                   example), mesh)

  def val_accuracy(state):
    predictions = np.asarray(predict(state.params, data.spectra, data.pca, data.val_pixels))
    return int(np.sum(predictions == val_classes)), len(val_classes)

  def predict_map(state):
    pixels = np.indices(scene.gt.shape).reshape(2, -1).T.astype(np.int32)
    return np.asarray(predict(state.params, data.spectra, data.pca, pixels)).reshape(scene.gt.shape)

  return Task(init_state=init_state, train_round=lambda state, r: run_round(state, data, r),
              val_accuracy=val_accuracy, predict_map=predict_map,
              compile_round=lambda state: compile_round(state, data),
              num_rounds=config.train.steps // steps, steps_per_round=steps,
              batch_size=config.train.batch_size, step_progress=step_progress)
