"""Pure, jitted epoch and evaluation functions over data resident on the device.

`train_epoch(state, data, rng) -> (state, metrics)` runs one whole epoch in one compiled program:
the example order comes from `rng` (folded from (seed, epoch) by the caller), windows are gathered
from the resident scene, every batch is sharded over the mesh axis `data`, and the steps run under
`lax.scan`. A last batch that does not fill up is padded with repeated examples whose loss weight is
0 (nothing is dropped).
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from hsi_jax.data import patches
from hsi_jax.train import losses
from hsi_jax.train.state import TrainState


@flax.struct.dataclass
class DeviceData:
  """Everything a run reads, on the device. Maps padded by `patch` on each side (patches.pad_scene).

  cube (H+2p, W+2p, B) float32; train_labels (H+2p, W+2p) int32; train_origins (N, 2), train_flips
  (N,) int8 (-1 = no augmented copy); val_origins (M, 2) int32 (scored on the host:
  window_accuracy).
  """
  cube: jax.Array
  train_labels: jax.Array
  train_origins: jax.Array
  train_flips: jax.Array
  val_origins: jax.Array


def make_mesh(devices=None) -> Mesh:
  """1-D mesh over all local devices, axis `data` (explicitly Auto-sharded)."""
  devices = devices or jax.local_devices()
  return jax.make_mesh((len(devices),), ("data",), axis_types=(AxisType.Auto,), devices=devices)


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, NamedSharding(mesh, P()))


def examples_per_epoch(num_windows: int, augment: bool) -> int:
  """Each kept window, plus its flipped copy when augmenting (the code's 2x training set)."""
  return 2 * num_windows if augment else num_windows


def loss_denominator(train_config, labelled, pixels):
  """Focal-loss mean: over all pixels of the real examples (faithful, decision 8: unlabelled ones
  add 0) or, with train.loss_reduction = "labelled", over the labelled pixels only."""
  if train_config.loss_reduction not in ("all_pixels", "labelled"):
    raise ValueError("train.loss_reduction must be 'all_pixels' or 'labelled', got "
                     f"{train_config.loss_reduction!r}.")
  return jnp.maximum(labelled if train_config.loss_reduction == "labelled" else pixels, 1)


def make_train_step(model, optimizer, train_config):
  """step(state, x (N, p, p, B), y (N, p, p), weight (N,)) -> (state, (loss sum, labelled pixels,
  weighted pixels)): one optimiser step on one batch; examples with weight 0 add no loss."""
  def loss_fn(params, batch_stats, x, y, weight):
    logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                  mutable=["batch_stats"])
    pixel_weight = jnp.broadcast_to(weight[:, None, None], y.shape)
    loss_sum, labelled = losses.focal_loss_sum(
        logits, jnp.where(pixel_weight > 0, y, 0), train_config.focal_gamma,
        train_config.focal_alpha)
    denominator = loss_denominator(train_config, labelled, jnp.sum(pixel_weight))
    return loss_sum / denominator, (updates["batch_stats"], loss_sum, labelled,
                                                     jnp.sum(pixel_weight))

  def train_step(state: TrainState, x, y, weight):
    grads, (batch_stats, *sums) = jax.grad(loss_fn, has_aux=True)(
        state.params, state.batch_stats, x, y, weight)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(state.step + 1, params, batch_stats, opt_state), tuple(sums)

  return train_step


def make_train_epoch(model, optimizer, train_config, patch: int, mesh: Mesh, augment: bool):
  batch_size = train_config.batch_size
  if batch_size % mesh.size:
    raise ValueError(f"train.batch_size ({batch_size}) must be a multiple of the number of "
                     f"devices ({mesh.size}).")
  batch_sharding = NamedSharding(mesh, P("data"))
  train_step = make_train_step(model, optimizer, train_config)

  def train_epoch(state: TrainState, data: DeviceData, rng):
    num_windows = data.train_origins.shape[0]
    num_examples = examples_per_epoch(num_windows, augment)
    steps = math.ceil(num_examples / batch_size)
    order = jax.random.permutation(rng, num_examples)
    padding = steps * batch_size - num_examples
    order = jnp.concatenate([order, order[:padding]]).reshape(steps, batch_size)
    weights = (jnp.arange(steps * batch_size) < num_examples).astype(jnp.float32)
    weights = weights.reshape(steps, batch_size)

    def step(state: TrainState, batch):
      example, weight = batch
      window = example % num_windows
      flip_code = jnp.where(example >= num_windows, data.train_flips[window], -1)
      origins = data.train_origins[window]
      x = patches.flip(patches.gather(data.cube, origins, patch), flip_code)
      y = patches.flip(patches.gather(data.train_labels, origins, patch), flip_code)
      x, y, weight = jax.lax.with_sharding_constraint((x, y, weight), batch_sharding)
      return train_step(state, x, y, weight)

    state, (loss_sums, labelled, pixels) = jax.lax.scan(step, state, (order, weights))
    denominator = loss_denominator(train_config, jnp.sum(labelled), jnp.sum(pixels))
    return state, {"loss": jnp.sum(loss_sums) / denominator}

  return jax.jit(train_epoch, donate_argnums=0)


def make_predict(model, patch: int, mesh: Mesh, chunk: int):
  """predict(variables, cube, origins (M, 2)) -> (M, p, p) int32 class ids 1..C (jitted)."""
  chunk = max(mesh.size, chunk - chunk % mesh.size)
  batch_sharding = NamedSharding(mesh, P("data"))

  def predict(variables, cube, origins):
    count = origins.shape[0]
    padded = jnp.concatenate([origins, jnp.zeros((-count % chunk, 2), origins.dtype)])

    def one_chunk(chunk_origins):
      x = jax.lax.with_sharding_constraint(patches.gather(cube, chunk_origins, patch),
                                           batch_sharding)
      return jnp.argmax(model.apply(variables, x, train=False), axis=-1).astype(jnp.int32) + 1

    predictions = jax.lax.map(one_chunk, padded.reshape(-1, chunk, 2))
    return predictions.reshape(-1, patch, patch)[:count]

  return jax.jit(predict)


def window_accuracy(predictions: np.ndarray, labels_padded: np.ndarray, origins: np.ndarray,
                    patch: int, metric: str = "labelled") -> tuple[int, int]:
  """(correct, counted) pixels of the windows. `labelled` (decision 5): labelled pixels only.
  `keras_all_pixels` (the official code's val_categorical_accuracy): every pixel counts, an
  unlabelled one being "correct" when the prediction is the first class (argmax of an all-zero
  one-hot row is 0)."""
  rows = origins[:, 0, None, None] + patch + np.arange(patch)[None, :, None]
  cols = origins[:, 1, None, None] + patch + np.arange(patch)[None, None, :]
  labels = labels_padded[rows, cols]
  labelled = labels > 0
  if metric == "labelled":
    return int(np.sum((predictions == labels) & labelled)), int(np.sum(labelled))
  if metric == "keras_all_pixels":
    correct = np.where(labelled, predictions == labels, predictions == 1)
    return int(np.sum(correct)), int(labels.size)
  raise ValueError(f"train.val_metric must be 'labelled' or 'keras_all_pixels', got {metric!r}.")
