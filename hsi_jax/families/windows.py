"""The windows family (DA-IMRN): every pixel of p x p windows, one round = one epoch.

Per seed, `seed_data` builds the inputs from the scene and that seed's partition (the scene padded
by p, the train windows with the labels they are trained on, their flips, the val windows); seeds
of different partitions are stacked with the shorter ones padded (padded examples carry weight 0
and a step of padding only changes nothing, train/step.py). `make_program` returns K seeds'
epoch as one jitted vmap, run a chunk of steps at a time (families/program.py). Seed k computes
its single run: the example order of an epoch depends only on (seed key, epoch), not on the
padding (step.epoch_order).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jax

from hsi_jax import errors, inference, models, parallel
from hsi_jax.data import patches, preprocess, splits as splits_lib
from hsi_jax.families import program as program_lib
from hsi_jax.train import optim, state as state_lib, step as step_lib

ROUND_NAME = "epoch"
WINDOWED = True  # inputs are the split's windows: a split.npz's must be split.patch wide
make_mesh = program_lib.make_mesh


def check(config, splits, mesh) -> None:
  """A UserError, before anything is written, for partitions that cannot train together: one
  program either augments every partition's windows with their flips or none. (A batch that does
  not divide over the mesh's `data` devices is padded with weight-0 examples: no rule.)"""
  del mesh
  augment = [uses_augmentation(config, split) for split in splits]
  if len(set(augment)) > 1:
    missing = [split.info.get("partition") for split, a in zip(splits, augment) if not a]
    raise errors.UserError(f"partitions {missing} record no flip for some training window, the "
                           "others do: all partitions trained together must agree on flip "
                           "augmentation (set --config.train.augment=False to train without).")
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


def uses_augmentation(config, split: splits_lib.Split) -> bool:
  """train.augment, where the partition recorded a flip for every window (blocks does)."""
  return bool(config.train.augment) and bool(np.all(split.train_flips >= 0))


def fit_preprocessing(config, cube: np.ndarray, split: splits_lib.Split) -> dict:
  """The input transform fitted on the split's training pixels: standardisation's mean / scale
  with data.standardize, else none ({}: raw values)."""
  return preprocess.fit_standardize(cube, split.train) if config.data.standardize else {}


def preprocessed(cube: np.ndarray, fitted: dict) -> np.ndarray:
  return preprocess.apply_standardize(cube, fitted) if fitted else cube


def seed_data(config, cube: np.ndarray, split: splits_lib.Split,
              fitted: dict) -> step_lib.WindowData:
  """One seed's inputs on the host (the scene, preprocessed, padded by the window side p)."""
  patch = config.split.patch
  cube = preprocessed(cube, fitted)
  return step_lib.WindowData(
      cube=patches.pad_scene(cube, patch), train_labels=window_labels(config, split),
      train_origins=splits_lib.window_origins(split.train_windows, patch),
      train_flips=split.train_flips, val_origins=splits_lib.window_origins(split.val_windows, patch),
      num_windows=np.int32(len(split.train_windows)))


def stack(trees: list[step_lib.WindowData]) -> step_lib.WindowData:
  """Per-seed data along a new leading axis; windows padded to the longest partition."""
  pad = program_lib.pad_rows
  return step_lib.WindowData(
      cube=np.stack([t.cube for t in trees]), train_labels=pad([t.train_labels for t in trees], 0),
      train_origins=pad([t.train_origins for t in trees], 0),
      train_flips=pad([t.train_flips for t in trees], -1),
      val_origins=pad([t.val_origins for t in trees], 0),
      num_windows=np.stack([t.num_windows for t in trees]))


def make_program(config, scene, splits, mesh) -> program_lib.Program:
  """K' seeds (splits: one per seed, padded to the mesh) trained as one program."""
  patch, train_config = config.split.patch, config.train
  augment = uses_augmentation(config, splits[0])  # the same for every split (check)
  fitted = [fit_preprocessing(config, scene.cube, s) for s in splits]
  host = stack([seed_data(config, scene.cube, s, f) for s, f in zip(splits, fitted)])
  data, data_axes = program_lib.put_seed_data(host, mesh, len(splits), images=("cube",))
  forms = models.conv_forms(mesh.devices.flat[0].platform, config.model.fast_conv)
  model = models.build_model(config.model, scene.num_classes, forms)
  optimizer = optim.make_optimizer(train_config)
  example = (jnp.zeros((1, patch, patch, scene.cube.shape[-1]), jnp.float32),)
  num_seeds = len(splits)
  steps = step_lib.epoch_steps(host.train_origins.shape[1], augment, train_config.batch_size)
  chunk_steps = program_lib.chunk_steps(steps)
  chunk = step_lib.make_train_chunk(model, optimizer, train_config, patch, mesh, augment,
                                    chunk_steps)
  predict = step_lib.make_predict(model, patch, mesh, train_config.eval_batch_size)
  options = models.compiler_options(config.model, forms)
  val_predictions = program_lib.jit_over_seeds(
      lambda state, data: predict(state.variables, data.cube, data.val_origins), mesh, num_seeds,
      in_axes=(0, data_axes), compiler_options=options)
  val_labels = [patches.pad_scene(s.val, patch) for s in splits]
  val_origins = [splits_lib.window_origins(s.val_windows, patch) for s in splits]

  def val_accuracy(predictions):
    scores = [step_lib.window_accuracy(predictions[k, :len(val_origins[k])], val_labels[k],
                                       val_origins[k], patch, train_config.val_metric)
              for k in range(num_seeds)]
    return tuple(np.asarray(column) for column in zip(*scores))

  def seed_bundle(best_states, k):
    variables = program_lib.seed_of(best_states.variables, k)
    return dict(preprocessing=fitted[k], variables=variables)

  return program_lib.Program(
      data=data, init=program_lib.init_fn(state_lib.make_init(model, optimizer, example), mesh, num_seeds),
      train_chunk=program_lib.jit_over_seeds(
          chunk, mesh, num_seeds, in_axes=(0, data_axes, 0, None, None), donate=True,
          out_shardings=(program_lib.seed_sharding(mesh), parallel.replicated(mesh)),
          compiler_options=options),
      val_predictions=val_predictions, val_accuracy=val_accuracy, seed_bundle=seed_bundle,
      num_rounds=train_config.epochs, steps_per_round=steps, chunk_steps=chunk_steps,
      seed_steps=tuple(step_lib.epoch_steps(len(s.train_windows), augment, train_config.batch_size)
                       for s in splits),
      batch_size=train_config.batch_size, round_name=ROUND_NAME)


def window_starts(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int],
                  patch: int) -> tuple[np.ndarray, np.ndarray]:
  """(start rows, start cols), each (len(rows), len(cols)): the window whose prediction pixel
  (r, c) of the scene takes. The scene's p x p grid from (0, 0) covers what it can; a border
  narrower than p takes the window flush with the scene's edge, the last one written where two
  such windows overlap (as the run's map was assembled before tiles: edge windows in row-major
  order, then the grid)."""
  height, width = shape
  on_grid = (rows < height - height % patch)[:, None] & (cols < width - width % patch)[None, :]

  def latest(x, n):  # the last window start (row-major) covering x
    return np.where(x >= n - patch, n - patch, x - x % patch)

  start_rows = np.where(on_grid, (rows - rows % patch)[:, None], latest(rows, height)[:, None])
  start_cols = np.where(on_grid, (cols - cols % patch)[None, :], latest(cols, width)[None, :])
  return start_rows, start_cols


def make_tile_predictor(config, num_classes: int, mesh) -> inference.TilePredictor:
  """DA-IMRN on tiles: each pixel of a tile takes its window's prediction (window_starts); the
  windows are gathered from the tile's block, a halo of p around it."""
  patch = config.split.patch
  forms = models.conv_forms(mesh.devices.flat[0].platform, config.model.fast_conv)
  model = models.build_model(config.model, num_classes, forms)
  logits = jax.jit(step_lib.make_logits(model, patch, mesh, config.train.eval_batch_size),
                   compiler_options=models.compiler_options(config.model, forms))
  placed = {}  # the last bundle's variables, on the mesh

  def predict(bundle, block, valid, origin, size, scene_shape, scores):
    if placed.get("bundle") is not bundle:
      placed.update(bundle=bundle, variables=parallel.replicate(bundle.variables, mesh))
    inputs = np.where(valid[..., None], preprocessed(block, bundle.preprocessing), 0.0)
    side = block.shape[0] - 2 * patch
    rows, cols = origin[0] + np.arange(size[0]), origin[1] + np.arange(size[1])
    start_rows, start_cols = window_starts(rows, cols, scene_shape, patch)
    starts, index = np.unique(np.stack([start_rows, start_cols], -1).reshape(-1, 2), axis=0,
                              return_inverse=True)
    origins = np.zeros(((side // patch + 1) ** 2, 2), np.int32)  # the most windows a tile takes
    origins[:len(starts)] = starts - np.asarray(origin)
    window_logits = np.asarray(logits(placed["variables"], jnp.asarray(inputs, jnp.float32),
                                      jnp.asarray(origins)))
    pixel_logits = window_logits[index.reshape(size), rows[:, None] - start_rows,
                                 cols[None, :] - start_cols]
    classes = np.argmax(pixel_logits, axis=-1).astype(np.int32) + 1
    return classes, (inference.softmax(pixel_logits) if scores else None)

  return inference.TilePredictor(halo=patch, align=patch, min_size=patch, predict=predict)
