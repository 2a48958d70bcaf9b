"""Input preprocessing with statistics from TRAINING pixels only (docs/decisions.md, "Inputs")."""

from __future__ import annotations

import numpy as np


def standardize(cube: np.ndarray, train_map: np.ndarray) -> np.ndarray:
  """Per-band (x - mean) / std, mean and std over the training pixels. cube (H, W, B) float32."""
  pixels = cube[train_map > 0]
  if pixels.shape[0] < 2:
    raise ValueError("Standardisation needs at least two training pixels.")
  mean, std = pixels.mean(axis=0), pixels.std(axis=0)
  return ((cube - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)
