"""Inputs of the pixel classifiers (SSAN, its ablation rows, KNN, SVM), as the SSAN code makes them.

docs/decisions.md, "Preprocessing": every band min-max normalised to [0, 1]; PCA to `components`
whitened components, each min-max normalised to [0, 1]; the neighbourhood patch zero-padded at the
scene border. The official code fits all of these statistics on every pixel of the scene, which
lets test pixels shape the inputs; here they are fitted on the TRAINING pixels only
(`fit_stats="train"`), the code's way is kept as `fit_stats="scene"` for faithful reproduction.
Whitening is a per-component scale, which the min-max that follows undoes, so it is not applied
separately.

`training_region` is what training inputs may read. Under the leakage-free `blocks` protocol it is
the pixels the DA-IMRN training windows cover plus the training pixels (docs/decisions.md, "SSAN
under blocks"); everything else is set to 0 -- the padding value -- in training inputs, so no
validation or test value reaches a training input. Under `pixels` it is the whole scene (the SSAN
protocol; audit.py measures what that leaks).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hsi_jax.data import audit, splits as splits_lib

FIT_STATS = ("train", "scene")


@dataclasses.dataclass(frozen=True)
class PixelInputs:
  """spectra (H, W, B) and pca (H, W, K) float32, min-max normalised; region (H, W) bool."""
  spectra: np.ndarray
  pca: np.ndarray
  region: np.ndarray

  def training_pca(self) -> np.ndarray:
    """The PCA image training inputs are cut from: zero outside the training region."""
    return np.where(self.region[..., None], self.pca, 0.0).astype(np.float32)


def minmax(values: np.ndarray, fit_mask: np.ndarray) -> np.ndarray:
  """(values - min) / (max - min) per last-axis channel, min and max over the `fit_mask` pixels.
  A constant channel maps to 0."""
  fitted = values[fit_mask]
  low, high = fitted.min(axis=0), fitted.max(axis=0)
  span = np.where(high > low, high - low, 1.0)
  return ((values - low) / span).astype(np.float32)


def pca_project(cube: np.ndarray, fit_mask: np.ndarray, components: int) -> np.ndarray:
  """(H, W, B) -> (H, W, components): projections on the leading principal axes of the fit pixels,
  each axis signed so that its largest-magnitude loading is positive (deterministic)."""
  fitted = cube[fit_mask].astype(np.float64)
  if fitted.shape[0] <= components:
    raise ValueError(f"PCA to {components} components needs more than {components} fit pixels, "
                     f"got {fitted.shape[0]}.")
  mean = fitted.mean(axis=0)
  _, _, axes = np.linalg.svd(fitted - mean, full_matrices=False)
  axes = axes[:components]
  axes *= np.sign(axes[np.arange(components), np.argmax(np.abs(axes), axis=1)])[:, None]
  return ((cube.astype(np.float64) - mean) @ axes.T).astype(np.float32)


def training_region(split: splits_lib.Split) -> np.ndarray:
  """(H, W) bool: pixels a training input may read. `blocks`: union of the train windows and the
  train pixels; `pixels`: the whole scene."""
  if split.info["protocol"] not in ("blocks", "npz"):  # npz: a leakage-free split as given
    return np.ones(split.train.shape, bool)
  return (split.train > 0) | audit.coverage(split.train_windows, split.train.shape)


def fit_mask(split: splits_lib.Split, fit_stats: str) -> np.ndarray:
  """(H, W) bool: the pixels input statistics are fitted on -- the training pixels ("train"), or
  the whole scene ("scene", the SSAN code's, which lets test pixels shape the inputs)."""
  if fit_stats not in FIT_STATS:
    raise ValueError(f"data.fit_stats must be one of {FIT_STATS}, got {fit_stats!r}.")
  return split.train > 0 if fit_stats == "train" else np.ones(split.train.shape, bool)


def make_pixel_inputs(cube: np.ndarray, split: splits_lib.Split, components: int,
                      fit_stats: str = "train") -> PixelInputs:
  fitted = fit_mask(split, fit_stats)
  spectra = minmax(cube, fitted)
  pca = minmax(pca_project(cube, fitted, components), fitted)
  return PixelInputs(spectra=spectra, pca=pca, region=training_region(split))
