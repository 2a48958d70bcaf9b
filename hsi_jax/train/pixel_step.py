"""Pure training and prediction functions of the pixels family (SSAN and its comparison rows, the
zoo's networks).

One example = one labelled pixel: its spectrum (B,) and the S x S x K neighbourhood around it in
the patch image (principal components or bands: data/pixel_inputs.py).
Training runs in rounds of `train.eval_every` iterations (the SSAN code validates every 1,000 of
its 10,000), each as a few chunks of steps (loop.py); a round's batches are drawn from consecutive
random permutations of the training pixels (every batch is full, so nothing is padded) and sharded
over the mesh axis `data`.
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from hsi_jax.data import patches
from hsi_jax.train import optim
from hsi_jax.train.state import TrainState


@flax.struct.dataclass
class PixelData:
  """On the device. spectra (H, W, B); patch_image / train_patch_image (H+2S, W+2S, K) padded by
  S (train_patch_image is zero outside the training region); train_pixels (N, 2) int32 with
  train_classes (N,) int32 in 0..C-1; val_pixels (M, 2) int32. Seeds trained together pad
  train_pixels / train_classes / val_pixels to the longest with zeros (a round's order never
  reaches the padding)."""
  spectra: jax.Array
  patch_image: jax.Array
  train_patch_image: jax.Array
  train_pixels: jax.Array
  train_classes: jax.Array
  val_pixels: jax.Array


def inputs_at(spectra, padded_image, pixels, size: int):
  """pixels (N, 2) -> (spectrum (N, B), patch (N, S, S, K)) centred on each pixel."""
  spectrum = spectra[pixels[:, 0], pixels[:, 1]]
  return spectrum, patches.gather(padded_image, pixels - size // 2, size)


def own_window_inputs(spectra, images, rows, size: int):
  """The masked-input control (pixel_inputs.own_window_rows): images = (patch_image,
  train_patch_image), rows (N, 6) = (r, c, r0, c0, r1, c1) -> (spectrum (N, B), patch (N, S, S,
  K)) read from the scene inside the pixel's own window (r0:r1, c0:c1) and from the training
  inputs' image (zero outside the training region) everywhere else."""
  image, train_image = images
  spectrum, patch = inputs_at(spectra, image, rows[:, :2], size)
  masked = patches.gather(train_image, rows[:, :2] - size // 2, size)
  offsets = jnp.arange(size) - size // 2
  scene_rows, scene_cols = rows[:, :1] + offsets, rows[:, 1:2] + offsets  # (N, S) each
  own = (((scene_rows >= rows[:, 2:3]) & (scene_rows < rows[:, 4:5]))[:, :, None]
         & ((scene_cols >= rows[:, 3:4]) & (scene_cols < rows[:, 5:6]))[:, None, :])
  return spectrum, jnp.where(own[..., None], patch, masked)


def kernel_l2_penalty(params) -> jax.Array:
  """Sum of the squares of every convolution kernel (a parameter named `kernel` with more than two
  axes): Keras' kernel_regularizer=l2 on convolutions, without its factor."""
  leaves = jax.tree_util.tree_leaves_with_path(params)
  return sum((jnp.sum(jnp.square(x)) for path, x in leaves
              if getattr(path[-1], "key", None) == "kernel" and x.ndim > 2), jnp.zeros(()))


def make_pixel_train_step(model, optimizer, kernel_l2: float = 0.0):
  """step(state, spectrum, patch, classes, dropout_key) -> (state, loss): the mean cross-entropy
  plus kernel_l2 x kernel_l2_penalty (train.kernel_l2; 0: none). BatchNorm statistics, where the
  network has them, are updated from the batch."""
  def loss_fn(params, batch_stats, spectrum, patch, classes, key):
    logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, spectrum, patch,
                                  train=True, rngs={"dropout": key}, mutable=["batch_stats"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, classes).mean()
    if kernel_l2:
      loss = loss + kernel_l2 * kernel_l2_penalty(params)
    return loss, updates.get("batch_stats", {})

  def train_step(state: TrainState, spectrum, patch, classes, key):
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, state.batch_stats, spectrum, patch, classes, key)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    return TrainState(state.step + 1, optax.apply_updates(state.params, updates), batch_stats,
                      opt_state), loss

  return train_step


def round_order(rng, count: int, steps: int, batch_size: int):
  """(order (steps, batch_size) int32 indices into the `count` training pixels, dropout key): the
  round's batches from consecutive random permutations (count is static: one seed's own)."""
  order_key, dropout_key = jax.random.split(rng)
  permutations = math.ceil(steps * batch_size / count)
  order = jax.vmap(lambda k: jax.random.permutation(k, count))(
      jax.random.split(order_key, permutations)).reshape(-1)[:steps * batch_size]
  return order.reshape(steps, batch_size), dropout_key


def make_pixel_train_chunk(model, optimizer, size: int, mesh: Mesh, chunk_steps: int,
                           kernel_l2: float = 0.0):
  """train_chunk(state, data, order (steps, batch), dropout_key, learning_rate, first) -> (state,
  {"loss_sum", "count"}), pure (families/pixels.py vmaps it over seeds and jits it): steps
  first .. first + chunk_steps - 1 (first: () int32, traced) of the round whose batches `order`
  holds. Steps past the round's last are padding and leave the state as it was. The round's loss
  is the sum of its chunks' loss_sum (the steps' mean losses) over the sum of their count (steps).
  kernel_l2: make_pixel_train_step's."""
  batch_sharding = NamedSharding(mesh, P("data"))
  train_step = make_pixel_train_step(model, optimizer, kernel_l2)

  def train_chunk(state: TrainState, data: PixelData, order, dropout_key, learning_rate, first):
    steps = order.shape[0]
    order = jnp.concatenate([order, jnp.zeros((-steps % chunk_steps,) + order.shape[1:],
                                              order.dtype)])
    index = first + jnp.arange(chunk_steps)

    def step(state, inputs):
      index, examples = inputs
      pixels = data.train_pixels[examples]
      spectrum, patch = inputs_at(data.spectra, data.train_patch_image, pixels, size)
      classes = data.train_classes[examples]
      spectrum, patch, classes = jax.lax.with_sharding_constraint((spectrum, patch, classes),
                                                                   batch_sharding)
      new_state, loss = train_step(state, spectrum, patch, classes,
                                   jax.random.fold_in(dropout_key, index))
      if steps % chunk_steps == 0:  # no padding step (static)
        return new_state, loss
      real = index < steps
      return jax.tree.map(lambda new, old: jnp.where(real, new, old), new_state, state), \
          jnp.where(real, loss, 0.0)

    state = state.replace(opt_state=optim.set_learning_rate(state.opt_state, learning_rate))
    state, losses = jax.lax.scan(
        step, state, (index, jax.lax.dynamic_slice_in_dim(order, first, chunk_steps)))
    return state, {"loss_sum": jnp.sum(losses),
                   "count": jnp.sum(index < steps).astype(jnp.float32)}

  return train_chunk


def make_pixel_logits(model, size: int, mesh: Mesh, chunk: int, cut=inputs_at):
  """logits(variables, spectra, images, rows (M, R)) -> (M, C) float32, `chunk` rows at a time,
  each chunk sharded over `data` (pure); variables: {"params", and "batch_stats" where the network
  has BatchNorm}. cut(spectra, images, rows, size) -> a chunk's inputs: inputs_at (images = the
  padded patch image, rows = pixels (M, 2)) or own_window_inputs (the control)."""
  chunk = max(mesh.shape["data"], chunk - chunk % mesh.shape["data"])
  batch_sharding = NamedSharding(mesh, P("data"))

  def logits(variables, spectra, images, rows):
    count, width = rows.shape
    padded = jnp.concatenate([rows, jnp.zeros((-count % chunk, width), rows.dtype)])

    def one_chunk(chunk_rows):
      spectrum, patch = jax.lax.with_sharding_constraint(
          cut(spectra, images, chunk_rows, size), batch_sharding)
      return model.apply(variables, spectrum, patch, train=False)

    scores = jax.lax.map(one_chunk, padded.reshape(-1, chunk, width))
    return scores.reshape((-1, scores.shape[-1]))[:count]

  return logits


def make_pixel_predict(model, size: int, mesh: Mesh, chunk: int, cut=inputs_at):
  """predict(variables, spectra, images, rows (M, R)) -> (M,) int32 class ids 1..C (pure; the
  arguments as make_pixel_logits')."""
  logits = make_pixel_logits(model, size, mesh, chunk, cut)

  def predict(variables, spectra, images, rows):
    return jnp.argmax(logits(variables, spectra, images, rows), axis=-1).astype(jnp.int32) + 1

  return predict
