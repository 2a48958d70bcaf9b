"""Pure epoch and evaluation functions of the windows family (DA-IMRN) over data resident on the device.

`train_chunk(state, data, rng, learning_rate, first) -> (state, sums)` is a chunk of an epoch's
steps (one compiled program once families/windows.py has vmapped and jitted it; the run loop calls
it a few times per epoch, loop.py): the example order comes from `rng` (folded from (seed, epoch)
by the caller), windows are gathered from the resident scene, every batch is sharded over the mesh
axis `data`, and the steps run under `lax.scan`. Each kept window is an example, plus its flipped
copy when augmenting (the code's 2x training set). A last batch that does not fill up is padded
with examples whose loss weight is 0 (nothing is dropped).
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from hsi_jax.data import patches
from hsi_jax.train import losses, optim
from hsi_jax.train.state import TrainState

LOSS_REDUCTIONS = ("all_pixels", "labelled")
VAL_METRICS = ("labelled", "keras_all_pixels")


@flax.struct.dataclass
class WindowData:
  """The windows family's inputs of one seed (built on the host, families.windows.seed_data) or of
K seeds stacked on a leading axis (what the epoch reads, resident on the devices; a leaf equal in
every seed, such as the scene of seeds sharing a partition, is kept once: program.put_seed_data).
Maps padded by `patch` on each side (patches.pad_scene).

  cube (H+2p, W+2p, B) float32; train_labels (N, p, p) int32: the class ids each train window is
  trained on (0 = none; families.windows.window_labels picks the rule); train_origins (N, 2), train_flips
  (N,) int8 (-1 = no augmented copy); val_origins (M, 2) int32 (scored on the host:
  window_accuracy); num_windows () int32: the first num_windows rows of train_origins are real (the
  rest pad a seed to the longest partition when several are trained together).
  """
  cube: jax.Array
  train_labels: jax.Array
  train_origins: jax.Array
  train_flips: jax.Array
  val_origins: jax.Array
  num_windows: jax.Array


def loss_denominator(train_config, labelled, pixels):
  """Focal-loss mean: over all pixels of the real examples (faithful, docs/decisions.md, "Loss":
  unlabelled ones add 0) or, with train.loss_reduction = "labelled", over the labelled pixels
  only."""
  return jnp.maximum(labelled if train_config.loss_reduction == "labelled" else pixels, 1)


def make_train_step(model, optimizer, train_config):
  """step(state, x (N, p, p, B), y (N, p, p), weight (N,)) -> (state, (loss sum, labelled pixels,
  weighted pixels)): one optimiser step on one batch; examples with weight 0 add no loss, and a
  batch whose weights are all 0 leaves the state as it was."""
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
    new_state = TrainState(state.step + 1, params, batch_stats, opt_state)
    # A batch of padding only (a short partition's last steps among longer ones) changes nothing.
    has_examples = jnp.sum(weight) > 0
    return jax.tree.map(lambda new, old: jnp.where(has_examples, new, old), new_state,
                        state), tuple(sums)

  return train_step


def epoch_order(key, num_valid, length: int) -> jax.Array:
  """(length,) int32: a random order of 0..num_valid-1, then num_valid..length-1 (padding).
  Element i's sort key comes from fold_in(key, i), so the order of the valid elements does not
  depend on `length`: a partition padded to a longer one draws the order it draws alone."""
  scores = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i)))(jnp.arange(length))
  return jnp.argsort(jnp.where(jnp.arange(length) < num_valid, scores, 2.0)).astype(jnp.int32)


def epoch_steps(num_windows: int, augment: bool, batch_size: int) -> int:
  """Steps of an epoch over `num_windows` windows (twice as many examples with flipped copies)."""
  return math.ceil((2 if augment else 1) * num_windows / batch_size)


def make_train_chunk(model, optimizer, train_config, patch: int, mesh: Mesh, augment: bool,
                     chunk_steps: int):
  """train_chunk(state, data, rng, learning_rate, first) -> (state, {"loss_sum", "count"}), pure
  (families/windows.py vmaps it over seeds and jits it): steps first .. first + chunk_steps - 1
  (first: () int32, traced) of the epoch whose example order `rng` draws. An epoch is
  ceil(steps / chunk_steps) chunks run one after another (loop.py); steps past the epoch's last
  are padding (weight 0: the state is left as it was). The epoch's loss is the sum of its chunks'
  loss_sum over the sum of their count (labelled or all pixels, train.loss_reduction). A batch
  that does not divide over the mesh axis `data` is padded with weight-0 copies."""
  batch_size = train_config.batch_size
  batch_sharding = NamedSharding(mesh, P("data"))
  device_batch = batch_size + (-batch_size % mesh.shape["data"])
  copies = 2 if augment else 1
  train_step = make_train_step(model, optimizer, train_config)

  def train_chunk(state: TrainState, data: WindowData, rng, learning_rate, first):
    num_windows = data.num_windows
    num_examples = copies * num_windows
    steps = epoch_steps(data.train_origins.shape[0], augment, batch_size)
    padded_steps = -(-steps // chunk_steps) * chunk_steps  # the chunks' whole length
    # The valid examples' order does not depend on the length (epoch_order): padding comes last.
    order = epoch_order(rng, num_examples, padded_steps * batch_size).reshape(padded_steps,
                                                                               batch_size)
    order = jax.lax.dynamic_slice_in_dim(order, first, chunk_steps)
    order = jnp.concatenate([order, order[:, :device_batch - batch_size]], axis=1)
    weights = ((order < num_examples) & (jnp.arange(device_batch) < batch_size)).astype(jnp.float32)

    def step(state: TrainState, batch):
      example, weight = batch
      example = jnp.where(example < num_examples, example, 0)
      window = example % num_windows
      flip_code = jnp.where(example >= num_windows, data.train_flips[window], -1)
      origins = data.train_origins[window]
      x = patches.flip(patches.gather(data.cube, origins, patch), flip_code)
      y = patches.flip(data.train_labels[window], flip_code)
      x, y, weight = jax.lax.with_sharding_constraint((x, y, weight), batch_sharding)
      return train_step(state, x, y, weight)

    state = state.replace(opt_state=optim.set_learning_rate(state.opt_state, learning_rate))
    state, (loss_sums, labelled, pixels) = jax.lax.scan(step, state, (order, weights))
    count = jnp.sum(labelled if train_config.loss_reduction == "labelled" else pixels)
    return state, {"loss_sum": jnp.sum(loss_sums), "count": count}

  return train_chunk


def make_logits(model, patch: int, mesh: Mesh, chunk: int):
  """logits(variables, cube, origins (M, 2)) -> (M, p, p, C) float32 of the windows at origins
  of the cube padded by p, `chunk` windows at a time, each chunk sharded over `data` (pure)."""
  devices = mesh.shape["data"]
  chunk = max(devices, chunk - chunk % devices)
  batch_sharding = NamedSharding(mesh, P("data"))

  def logits(variables, cube, origins):
    count = origins.shape[0]
    padded = jnp.concatenate([origins, jnp.zeros((-count % chunk, 2), origins.dtype)])

    def one_chunk(chunk_origins):
      x = jax.lax.with_sharding_constraint(patches.gather(cube, chunk_origins, patch),
                                           batch_sharding)
      return model.apply(variables, x, train=False)

    scores = jax.lax.map(one_chunk, padded.reshape(-1, chunk, 2))
    return scores.reshape((-1, patch, patch, scores.shape[-1]))[:count]

  return logits


def make_predict(model, patch: int, mesh: Mesh, chunk: int):
  """predict(variables, cube, origins (M, 2)) -> (M, p, p) int32 class ids 1..C (pure)."""
  logits = make_logits(model, patch, mesh, chunk)

  def predict(variables, cube, origins):
    return jnp.argmax(logits(variables, cube, origins), axis=-1).astype(jnp.int32) + 1

  return predict


def window_accuracy(predictions: np.ndarray, labels_padded: np.ndarray, origins: np.ndarray,
                    patch: int, metric: str = "labelled") -> tuple[int, int]:
  """(correct, counted) pixels of the windows. `labelled` (docs/decisions.md, "Validation
  metric"): labelled pixels only.
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
  raise ValueError(f"train.val_metric must be one of {VAL_METRICS}, got {metric!r}.")
