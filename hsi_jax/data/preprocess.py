"""Input preprocessing with statistics from TRAINING pixels only (docs/decisions.md, "Inputs").

Each transform is fitted once (`fit_*`: arrays a run saves in its inference bundle) and applied to
any block of pixels (`apply_*`: elementwise per pixel, so a tile of a scene gets exactly the values
the whole scene would).
"""

from __future__ import annotations

import numpy as np


def fit_standardize(cube: np.ndarray, train_map: np.ndarray) -> dict[str, np.ndarray]:
  """{"mean": (B,), "scale": (B,)} float32 over the training pixels of cube (H, W, B) float32; a
  constant band gets scale 1."""
  pixels = cube[train_map > 0]
  if pixels.shape[0] < 2:
    raise ValueError("Standardisation needs at least two training pixels.")
  std = pixels.std(axis=0)
  return dict(mean=pixels.mean(axis=0), scale=np.where(std > 0, std, 1.0).astype(std.dtype))


def apply_standardize(values: np.ndarray, fitted: dict[str, np.ndarray]) -> np.ndarray:
  """(..., B) float32 -> (values - mean) / scale, float32."""
  return ((values - fitted["mean"]) / fitted["scale"]).astype(np.float32)


def standardize(cube: np.ndarray, train_map: np.ndarray) -> np.ndarray:
  """Per-band (x - mean) / std, mean and std over the training pixels. cube (H, W, B) float32."""
  return apply_standardize(cube, fit_standardize(cube, train_map))
