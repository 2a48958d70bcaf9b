"""The pixels family: centre-pixel classification by a network of the pixel's neighbourhood (SSAN
and its comparison rows, SSRN, HybridSN, DBDA, the 3-D CNN). One round = `train.eval_every`
iterations (the SSAN code validates every 1,000 of its 10,000), or with `train.epochs` in the
config one epoch: ceil(training pixels / batch) iterations (of the seed with the most pixels).

Per seed, `seed_data` builds the spectra and the patch image from that seed's partition
(statistics from its training pixels unless data.fit_stats = "scene"); seeds are stacked with their
pixel lists padded to the longest. A round's batch order is drawn per seed from its own number of
training pixels (pixel_step.round_order, unrolled over the K seeds inside the program), so seed k
computes exactly its single run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hsi_jax import errors, inference, models, parallel
from hsi_jax.data import patches, pixel_inputs, splits as splits_lib
from hsi_jax.families import program as program_lib
from hsi_jax.train import optim, pixel_step, state as state_lib

ROUND_NAME = "round"
WINDOWED = False  # inputs are neighbourhoods of pixels: a split.npz gives maps and a region
make_mesh = program_lib.make_mesh


def check(config, splits, mesh) -> None:
  """A UserError, before anything is written, for what this config cannot train on these splits
  on this mesh: each seed's batch is split over the mesh's `data` devices, and the best state is
  chosen on validation pixels."""
  devices = mesh.shape["data"]
  if config.train.batch_size % devices:
    raise errors.UserError(
        f"train.batch_size={config.train.batch_size} must be a multiple of the {devices} devices "
        f"each batch is split over; use --config.train.batch_size="
        f"{-(-config.train.batch_size // devices) * devices}, or --config.mesh_seeds to put more "
        "devices on seeds.")
  for split in splits:
    if not np.any(split.val > 0):
      raise errors.UserError(f"{config.model.name} chooses its best state on validation pixels; "
                             f"partition {split.info.get('partition')} has none (set "
                             "split.val_per_class > 0).")


def fit_preprocessing(config, cube: np.ndarray, split: splits_lib.Split) -> dict:
  """The inputs' statistics (pixel_inputs.fit_inputs) on the split's training pixels (or the
  scene's, data.fit_stats="scene")."""
  data = config.data
  return pixel_inputs.fit_inputs(cube, pixel_inputs.fit_mask(split, data.fit_stats),
                                 components=data.pca_components, patch_bands=data.patch_bands,
                                 patch_scaling=data.patch_scaling)


def patch_channels(config, num_bands: int) -> int:
  """K, the channels of the patches: the principal components or every band (data.patch_bands)."""
  return config.data.pca_components if config.data.patch_bands == "pca" else num_bands


def round_steps(train_config, counts) -> tuple[int, int]:
  """(steps per round, rounds): train.eval_every and train.steps / eval_every, or with
  train.epochs one epoch of the largest of the seeds' training pixel `counts` and the epochs."""
  if "epochs" in train_config:
    return -(-max(counts) // train_config.batch_size), train_config.epochs
  return train_config.eval_every, train_config.steps // train_config.eval_every


def seed_data(config, cube: np.ndarray, split: splits_lib.Split,
              fitted: dict) -> pixel_step.PixelData:
  """One seed's inputs on the host: the spectra, the patch image padded by the neighbourhood, and
  the one training inputs read (zero outside the training region)."""
  size = config.data.neighbourhood
  spectra, image = pixel_inputs.apply_inputs(cube, fitted)
  region = pixel_inputs.training_region(split)
  val_pixels = np.argwhere(split.val > 0).astype(np.int32)
  return pixel_step.PixelData(
      spectra=spectra, patch_image=patches.pad_scene(image, size),
      train_patch_image=patches.pad_scene(
          np.where(region[..., None], image, 0.0).astype(np.float32), size),
      train_pixels=np.argwhere(split.train > 0).astype(np.int32),
      train_classes=split.train[split.train > 0].astype(np.int32) - 1, val_pixels=val_pixels)


def stack(trees: list[pixel_step.PixelData]) -> pixel_step.PixelData:
  pad = program_lib.pad_rows
  return pixel_step.PixelData(
      spectra=np.stack([t.spectra for t in trees]), patch_image=np.stack([t.patch_image for t in trees]),
      train_patch_image=np.stack([t.train_patch_image for t in trees]),
      train_pixels=pad([t.train_pixels for t in trees], 0),
      train_classes=pad([t.train_classes for t in trees], 0),
      val_pixels=pad([t.val_pixels for t in trees], 0))


def make_program(config, scene, splits, mesh) -> program_lib.Program:
  """K' seeds (splits: one per seed, padded to the mesh) trained as one program."""
  size, train_config = config.data.neighbourhood, config.train
  batch_size = train_config.batch_size
  fitted = [fit_preprocessing(config, scene.cube, s) for s in splits]
  hosts = [seed_data(config, scene.cube, s, f) for s, f in zip(splits, fitted)]
  counts = [len(h.train_pixels) for h in hosts]
  steps, num_rounds = round_steps(train_config, counts)
  data, data_axes = program_lib.put_seed_data(
      stack(hosts), mesh, len(splits), images=("spectra", "patch_image", "train_patch_image"))
  forms = models.conv_forms(mesh.devices.flat[0].platform, config.model.fast_conv)
  model = models.build_model(config.model, scene.num_classes, forms)
  options = models.compiler_options(config.model, forms)
  optimizer = optim.make_optimizer(train_config)
  example = (jnp.zeros((1, scene.cube.shape[-1]), jnp.float32),
             jnp.zeros((1, size, size, patch_channels(config, scene.cube.shape[-1])), jnp.float32))
  num_seeds = len(splits)
  chunk_steps = program_lib.chunk_steps(steps)
  chunk_fn = program_lib.over_seeds(
      pixel_step.make_pixel_train_chunk(model, optimizer, size, mesh, chunk_steps,
                                        train_config.get("kernel_l2", 0.0)),
      num_seeds, in_axes=(0, data_axes, 0, 0, None, None))

  def train_chunk(states, data, keys, learning_rate, first):
    orders, dropout_keys = zip(*[pixel_step.round_order(keys[k], count, steps, batch_size)
                                 for k, count in enumerate(counts)])
    return chunk_fn(states, data, jnp.stack(orders), jnp.stack(dropout_keys), learning_rate,
                    first)

  predict = pixel_step.make_pixel_predict(model, size, mesh, train_config.eval_batch_size)
  val_predictions = program_lib.jit_over_seeds(
      lambda state, data: predict(state.variables, data.spectra, data.patch_image, data.val_pixels), mesh,
      num_seeds, in_axes=(0, data_axes), compiler_options=options)
  val_classes = [s.val[s.val > 0] for s in splits]

  def val_accuracy(predictions):
    correct = [int(np.sum(predictions[k, :len(c)] == c)) for k, c in enumerate(val_classes)]
    return np.asarray(correct), np.asarray([len(c) for c in val_classes])

  def seed_bundle(best_states, k):
    return dict(preprocessing=fitted[k],
                variables=program_lib.seed_of(best_states.variables, k))

  control_rows = [pixel_inputs.own_window_rows(s) for s in splits]
  run_info = lambda best_states, k: {}  # noqa: E731  (`pixels`: no control, the test is one)
  if all(rows is not None for rows in control_rows):
    run_info = _control(model, config, mesh, num_seeds, options, data, data_axes, splits,
                        control_rows)

  return program_lib.Program(
      data=data, init=program_lib.init_fn(state_lib.make_init(model, optimizer, example), mesh, num_seeds),
      train_chunk=jax.jit(train_chunk, donate_argnums=0, out_shardings=(
          program_lib.seed_sharding(mesh), parallel.replicated(mesh)), compiler_options=options),
      val_predictions=val_predictions, val_accuracy=val_accuracy, seed_bundle=seed_bundle,
      num_rounds=num_rounds, steps_per_round=steps,
      seed_steps=(steps,) * num_seeds, batch_size=batch_size, chunk_steps=chunk_steps,
      round_name=ROUND_NAME, run_info=run_info)


def _control(model, config, mesh, num_seeds, options, data, data_axes, splits, control_rows):
  """run_info(best_states, k) -> {"control_map": (H, W) int32, seed k's classes at its test
  pixels with the masked-input control's inputs (pixel_inputs.own_window_rows), 0 elsewhere}; every
  seed is predicted at once on the first call for a best state."""
  predict = pixel_step.make_pixel_predict(model, config.data.neighbourhood, mesh,
                                          config.train.eval_batch_size,
                                          cut=pixel_step.own_window_inputs)
  predictions = program_lib.jit_over_seeds(
      lambda state, data, rows: predict(state.variables, data.spectra,
                                        (data.patch_image, data.train_patch_image), rows),
      mesh, num_seeds, in_axes=(0, data_axes, 0), compiler_options=options)
  rows = parallel.put(program_lib.pad_rows(control_rows, 0), program_lib.seed_sharding(mesh))
  done = {}

  def run_info(best_states, k):
    if done.get("states") is not best_states:
      done.update(states=best_states, classes=np.asarray(predictions(best_states, data, rows)))
    pixels = control_rows[k][:, :2]
    control_map = np.zeros(splits[k].test.shape, np.int32)
    control_map[pixels[:, 0], pixels[:, 1]] = done["classes"][k, :len(pixels)]
    return dict(control_map=control_map)

  return run_info


def make_tile_predictor(config, num_classes: int, mesh) -> inference.TilePredictor:
  """The pixel models on tiles: every pixel of the tile, its neighbourhood cut from the tile's
  patch-image block (a halo of the neighbourhood's side). Only the tile's own pixels are
  classified (a scene smaller than the tile is not padded to it), their count rounded up to a
  multiple of train.eval_batch_size, so a scene's tiles compile a few programs at most."""
  size, chunk = config.data.neighbourhood, config.train.eval_batch_size
  forms = models.conv_forms(mesh.devices.flat[0].platform, config.model.fast_conv)
  model = models.build_model(config.model, num_classes, forms)
  logits = jax.jit(pixel_step.make_pixel_logits(model, size, mesh, chunk),
                   compiler_options=models.compiler_options(config.model, forms))
  placed = {}  # the last bundle's parameters, on the mesh

  def predict(bundle, block, valid, origin, tile_size, scene_shape, scores):
    del origin, scene_shape
    if placed.get("bundle") is not bundle:
      placed.update(bundle=bundle, variables=parallel.replicate(bundle.variables, mesh))
    spectra, image = (np.where(valid[..., None], x, 0.0).astype(np.float32)
                    for x in pixel_inputs.apply_inputs(block, bundle.preprocessing))
    side = block.shape[0] - 2 * size
    count = tile_size[0] * tile_size[1]
    pixels = np.zeros((-(-count // chunk) * chunk, 2), np.int32)
    pixels[:count] = np.indices(tile_size).reshape(2, -1).T
    pixel_logits = np.asarray(logits(placed["variables"],
                                     spectra[size:size + side, size:size + side], image,
                                     jnp.asarray(pixels)))[:count].reshape(*tile_size, -1)
    classes = np.argmax(pixel_logits, axis=-1).astype(np.int32) + 1
    return classes, (inference.softmax(pixel_logits) if scores else None)

  return inference.TilePredictor(halo=size, align=1, min_size=1, predict=predict)
