"""Full-scene prediction: a class for every pixel, borders included."""

from __future__ import annotations

import numpy as np


def scene_tiles(shape: tuple[int, int], patch: int) -> tuple[np.ndarray, int]:
  """(origins (M, 2), number of grid tiles): the p x p grid from (0, 0) (the protocol's test tiles)
  first, then tiles flush with the bottom / right edge for a border narrower than p."""
  height, width = shape
  grid_rows, grid_cols = np.arange(0, height - patch + 1, patch), np.arange(0, width - patch + 1, patch)
  grid = np.stack(np.meshgrid(grid_rows, grid_cols, indexing="ij"), -1).reshape(-1, 2)
  rows = np.append(grid_rows, height - patch) if height % patch else grid_rows
  cols = np.append(grid_cols, width - patch) if width % patch else grid_cols
  every = np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
  edge = every[(every[:, 0] % patch != 0) | (every[:, 1] % patch != 0)]
  return np.concatenate([grid, edge]).astype(np.int32), len(grid)


def assemble(predictions: np.ndarray, origins: np.ndarray, num_grid: int, shape) -> np.ndarray:
  """(H, W) map from per-tile predictions (M, p, p): edge tiles first, grid tiles win overlaps."""
  patch = predictions.shape[1]
  scene = np.zeros(shape, np.int32)
  order = list(range(num_grid, len(origins))) + list(range(num_grid))
  for i in order:
    r, c = origins[i]
    scene[r:r + patch, c:c + patch] = predictions[i]
  return scene
