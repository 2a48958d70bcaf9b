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

import numpy as np

from hsi_jax.data import audit, splits as splits_lib

FIT_STATS = ("train", "scene")


def fit_minmax(values: np.ndarray, fit_mask: np.ndarray) -> dict[str, np.ndarray]:
  """{"low": (C,), "span": (C,)}: min and max - min per last-axis channel over the `fit_mask`
  pixels (a constant channel gets span 1)."""
  fitted = values[fit_mask]
  low, high = fitted.min(axis=0), fitted.max(axis=0)
  return dict(low=low, span=np.where(high > low, high - low, 1.0))


def apply_minmax(values: np.ndarray, fitted: dict[str, np.ndarray]) -> np.ndarray:
  """(..., C) -> (values - low) / span, float32."""
  return ((values - fitted["low"]) / fitted["span"]).astype(np.float32)


def minmax(values: np.ndarray, fit_mask: np.ndarray) -> np.ndarray:
  """(values - min) / (max - min) per last-axis channel, min and max over the `fit_mask` pixels.
  A constant channel maps to 0."""
  return apply_minmax(values, fit_minmax(values, fit_mask))


def fit_pca(cube: np.ndarray, fit_mask: np.ndarray, components: int) -> dict[str, np.ndarray]:
  """{"mean": (B,), "axes": (components, B)} float64: the leading principal axes of the fit
  pixels, each signed so that its largest-magnitude loading is positive (deterministic)."""
  fitted = cube[fit_mask].astype(np.float64)
  if fitted.shape[0] <= components:
    raise ValueError(f"PCA to {components} components needs more than {components} fit pixels, "
                     f"got {fitted.shape[0]}.")
  mean = fitted.mean(axis=0)
  _, _, axes = np.linalg.svd(fitted - mean, full_matrices=False)
  axes = axes[:components]
  axes *= np.sign(axes[np.arange(components), np.argmax(np.abs(axes), axis=1)])[:, None]
  return dict(mean=mean, axes=axes)


def apply_pca(values: np.ndarray, fitted: dict[str, np.ndarray]) -> np.ndarray:
  """(..., B) -> (..., components) float32 projections on the fitted axes."""
  return ((values.astype(np.float64) - fitted["mean"]) @ fitted["axes"].T).astype(np.float32)


def pca_project(cube: np.ndarray, fit_mask: np.ndarray, components: int) -> np.ndarray:
  """(H, W, B) -> (H, W, components): projections on the leading principal axes of the fit pixels
  (fit_pca)."""
  return apply_pca(cube, fit_pca(cube, fit_mask, components))


def fit_inputs(cube: np.ndarray, fit_mask: np.ndarray, components: int) -> dict[str, np.ndarray]:
  """Everything the pixel models' inputs are made with, fitted on the fit_mask pixels: the
  spectra's min-max (spectra_low, spectra_span), the PCA (pca_mean, pca_axes) and the min-max of
  its projections (pca_low, pca_span). What an inference bundle saves."""
  spectra, pca = fit_minmax(cube, fit_mask), fit_pca(cube, fit_mask, components)
  projected = fit_minmax(apply_pca(cube, pca), fit_mask)
  return dict(spectra_low=spectra["low"], spectra_span=spectra["span"], pca_mean=pca["mean"],
              pca_axes=pca["axes"], pca_low=projected["low"], pca_span=projected["span"])


def apply_inputs(values: np.ndarray, fitted: dict[str, np.ndarray]) -> tuple[np.ndarray,
                                                                             np.ndarray]:
  """(..., B) -> (spectra (..., B), pca (..., components)) float32, each min-max normalised with
  the fit_inputs statistics."""
  spectra = apply_minmax(values, dict(low=fitted["spectra_low"], span=fitted["spectra_span"]))
  projected = apply_pca(values, dict(mean=fitted["pca_mean"], axes=fitted["pca_axes"]))
  return spectra, apply_minmax(projected, dict(low=fitted["pca_low"], span=fitted["pca_span"]))


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
