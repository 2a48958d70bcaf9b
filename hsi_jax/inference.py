"""Every pixel of a scene classified tile by tile: memory bounded by the tile, not the scene.

A family turns a bundle's config into a `TilePredictor` (one jitted function of a fixed tile
shape: one compile per run, whatever the scene's size). `predict_tiles` reads the cube window by
window with a halo of the context the model needs (rows and columns beyond the scene are zeros,
as the training inputs' padding), and yields each tile's classes (and scores) as it is done.
Pixels that hold no data (the file's nodata value, NaN, an all-zero spectrum) are class 0 and read
as padding by their neighbours. The training run's own map (run.py) and launch/predict.py both go
through here.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Callable, Iterator, Optional

import numpy as np

from hsi_jax import errors
from hsi_jax.bundle import Bundle
from hsi_jax.data import rasters

DEFAULT_TILE = 256  # interior pixels per side; a DA-IMRN tile of 200 bands reads ~56 MB


@dataclasses.dataclass(frozen=True)
class TilePredictor:
  """predict(bundle, block, valid, origin, size, scene_shape, scores) -> (classes (h, w) int32
  1..C, scores (h, w, C) float32 or None). block: (T + 2 halo, T + 2 halo, B) float32 raw values
  of the scene rows [r0 - halo, r0 + T + halo) (same for columns), zeros beyond the scene; valid:
  its (T + 2 halo, T + 2 halo) pixels inside the scene that hold data; origin (r0, c0) and size
  (h, w) <= (T, T): the interior to classify; scene_shape (H, W)."""
  halo: int
  align: int      # tile origins are multiples of it
  min_size: int   # the smallest scene side the model classifies (its window)
  predict: Callable


@dataclasses.dataclass(frozen=True)
class Tile:
  rows: tuple[int, int]
  cols: tuple[int, int]
  classes: np.ndarray            # (h, w) int32, 0 where the pixel holds no data
  scores: Optional[np.ndarray]   # (h, w, C) float32 class probabilities, when asked for
  value_range: Optional[tuple[float, float]]  # of the tile's pixels with data (None: none has)


def check_cube(info: rasters.CubeInfo, bundle: Bundle, predictor: TilePredictor) -> None:
  """A UserError for a cube the bundle cannot classify: another band count, smaller than the
  model's window."""
  height, width, bands = info.shape
  if bands != bundle.num_bands:
    raise errors.UserError(f"{info.path} has {bands} bands, the model was trained on "
                           f"{bundle.num_bands}; give a cube of the training sensor's "
                           f"{bundle.num_bands} bands (in the same order).")
  if min(height, width) < predictor.min_size:
    raise errors.UserError(f"{info.path} is {height}x{width} pixels, smaller than the model's "
                           f"{predictor.min_size}x{predictor.min_size} window; it cannot be "
                           "classified by this model.")


def tile_size(tile: int, predictor: TilePredictor) -> int:
  """`tile` rounded up to a multiple of the predictor's alignment."""
  return -(-max(int(tile), 1) // predictor.align) * predictor.align


def predict_tiles(reader: rasters.CubeReader, predictor: TilePredictor, bundle: Bundle,
                  tile: int = DEFAULT_TILE, scores: bool = False,
                  on_tile: Optional[Callable[[int, int], None]] = None) -> Iterator[Tile]:
  """Tiles of the scene in row-major order; on_tile(pixels done, pixels in all) after each."""
  check_cube(reader.info, bundle, predictor)
  height, width, bands = reader.info.shape
  size, halo = tile_size(tile, predictor), predictor.halo
  side = size + 2 * halo
  done = 0
  for r0 in range(0, height, size):
    for c0 in range(0, width, size):
      r1, c1 = min(r0 + size, height), min(c0 + size, width)
      block = np.zeros((side, side, bands), np.float32)
      valid = np.zeros((side, side), bool)
      rows = (max(r0 - halo, 0), min(r1 + halo, height))
      cols = (max(c0 - halo, 0), min(c1 + halo, width))
      at = (slice(rows[0] - r0 + halo, rows[1] - r0 + halo),
            slice(cols[0] - c0 + halo, cols[1] - c0 + halo))
      block[at] = reader.read(rows, cols)
      valid[at] = ~rasters.nodata_mask(block[at], reader.info.nodata)
      block[~valid] = 0.0  # no data reads as the padding beyond the scene
      classes, tile_scores = predictor.predict(bundle, block, valid, (r0, c0), (r1 - r0, c1 - c0),
                                               (height, width), scores)
      interior = (slice(halo, halo + r1 - r0), slice(halo, halo + c1 - c0))
      inside = valid[interior]
      values = block[interior][inside]
      value_range = (float(values.min()), float(values.max())) if values.size else None
      classes = np.where(inside, classes, 0).astype(np.int32)
      if tile_scores is not None:
        tile_scores = np.where(inside[..., None], tile_scores, 0.0).astype(np.float32)
      done += (r1 - r0) * (c1 - c0)
      if on_tile is not None:
        on_tile(done, height * width)
      yield Tile((r0, r1), (c0, c1), classes, tile_scores, value_range)


def predict_map(reader: rasters.CubeReader, predictor: TilePredictor, bundle: Bundle,
                tile: int = DEFAULT_TILE) -> np.ndarray:
  """(H, W) int32 class ids of every pixel, in memory (predict_tiles)."""
  height, width, _ = reader.info.shape
  classes = np.zeros((height, width), np.int32)
  for done in predict_tiles(reader, predictor, bundle, tile):
    classes[slice(*done.rows), slice(*done.cols)] = done.classes
  return classes


def softmax(logits: np.ndarray) -> np.ndarray:
  """Class probabilities along the last axis, float32."""
  shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
  return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)


def value_range_warning(info: rasters.CubeInfo, bundle: Bundle, low: float,
                        high: float) -> Optional[str]:
  """A warning when the cube's values [low, high] do not look scaled as the training pixels'
  were: reaching beyond their range by more than its width, or spanning a twentieth of it or
  twenty times it (reflectance against digital numbers, another gain)."""
  train_low, train_high = bundle.meta["train_value_range"]
  width = max(train_high - train_low, 1e-12)
  outside = low < train_low - width or high > train_high + width
  if outside or not width / 20 <= high - low <= width * 20:
    return (f"{info.path}: values {low:g}..{high:g}, the training pixels' were "
            f"{train_low:g}..{train_high:g}; is the cube scaled as the training scene was? The "
            "map may mean little.")
  return None


class Progress:
  """One line per tenth of the scene (a redrawn line on a terminal): pixels, px/s, ETA."""

  def __init__(self, label: str, stream=None):
    self._label, self._stream = label, stream or sys.stdout
    self._start, self._next = time.perf_counter(), 1

  def __call__(self, done: int, total: int) -> None:
    interactive = getattr(self._stream, "isatty", lambda: False)()
    if not interactive and done * 10 < self._next * total:
      return
    self._next = done * 10 // total + 1
    elapsed = max(time.perf_counter() - self._start, 1e-9)
    rate = done / elapsed
    line = (f"{self._label}: {done:,}/{total:,} px, {rate:,.0f} px/s, ETA "
            f"{(total - done) / max(rate, 1e-9):.0f} s")
    self._stream.write(("\r" + line + ("\n" if done == total else "")) if interactive
                       else line + "\n")
    self._stream.flush()
