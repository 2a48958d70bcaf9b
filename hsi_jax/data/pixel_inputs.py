"""Inputs of the pixel classifiers: a pixel's spectrum and the neighbourhood patch around it.

Spectra (SSAN's spectral branch, KNN, SVM): every band min-max normalised to [0, 1] (docs/
decisions.md, "Preprocessing"). The patch image the neighbourhoods are cut from is made in two
steps, each a config choice (`data.patch_bands`, `data.patch_scaling`), so that every network gets
the input its authors' code gives it (docs/decisions.md, "Zoo inputs"):
  patch_bands   "pca": the leading `data.pca_components` principal components (SSAN, HybridSN);
                "all": every band (SSRN, DBDA, the 3-D CNN);
  patch_scaling "minmax": each channel to [0, 1] (SSAN);
                "standard": each channel to mean 0, std 1 (sklearn's preprocessing.scale: SSRN,
                DBDA; on principal components, PCA whitening: HybridSN);
                "cube_minmax": one min-max over every channel (DeepHyperX's, the 3-D CNN).
The patch is zero-padded at the scene border. The official codes fit all of these statistics on
every pixel of the scene, which lets test pixels shape the inputs; here they are fitted on the
TRAINING pixels only (`fit_stats="train"`), the codes' way is kept as `fit_stats="scene"` for
faithful reproduction. (SSAN whitens before its min-max, which undoes it, so it is not applied.)

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
PATCH_BANDS = ("pca", "all")
PATCH_SCALINGS = ("minmax", "standard", "cube_minmax")


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


def fit_scaling(values: np.ndarray, scaling: str) -> dict[str, np.ndarray]:
  """{"shift": (C,), "scale": (C,)} of `scaling` (PATCH_SCALINGS) fitted on values (N, C): the
  patch is (x - shift) / scale. A constant channel gets scale 1."""
  if scaling == "minmax":
    fitted = fit_minmax(values, np.ones(len(values), bool))
    return dict(shift=fitted["low"], scale=fitted["span"])
  if scaling == "standard":
    std = values.std(axis=0)
    return dict(shift=values.mean(axis=0), scale=np.where(std > 0, std, 1.0))
  if scaling == "cube_minmax":
    low, high = values.min(), values.max()
    channels = np.ones(values.shape[1])
    return dict(shift=low * channels, scale=(high - low if high > low else 1.0) * channels)
  raise ValueError(f"data.patch_scaling must be one of {PATCH_SCALINGS}, got {scaling!r}.")


def fit_inputs(cube: np.ndarray, fit_mask: np.ndarray, *, components: int, patch_bands: str,
               patch_scaling: str) -> dict[str, np.ndarray]:
  """Everything the pixel models' inputs are made with, fitted on the fit_mask pixels: the
  spectra's min-max (spectra_low, spectra_span), with patch_bands="pca" the PCA (pca_mean,
  pca_axes), and the patch image's scaling (patch_shift, patch_scale; fit_scaling). What an
  inference bundle saves."""
  if patch_bands not in PATCH_BANDS:
    raise ValueError(f"data.patch_bands must be one of {PATCH_BANDS}, got {patch_bands!r}.")
  spectra = fit_minmax(cube, fit_mask)
  fitted = dict(spectra_low=spectra["low"], spectra_span=spectra["span"])
  source = cube[fit_mask].astype(np.float64)
  if patch_bands == "pca":
    pca = fit_pca(cube, fit_mask, components)
    fitted.update(pca_mean=pca["mean"], pca_axes=pca["axes"])
    source = apply_pca(source, pca)
  scaling = fit_scaling(source, patch_scaling)
  return dict(fitted, patch_shift=scaling["shift"], patch_scale=scaling["scale"])


def apply_inputs(values: np.ndarray, fitted: dict[str, np.ndarray]) -> tuple[np.ndarray,
                                                                             np.ndarray]:
  """(..., B) -> (spectra (..., B), patch image (..., K)) float32 with the fit_inputs statistics
  (K: the principal components, or B). Bundles written before patch_scaling existed name the
  patch's min-max pca_low / pca_span."""
  spectra = apply_minmax(values, dict(low=fitted["spectra_low"], span=fitted["spectra_span"]))
  source = (apply_pca(values, dict(mean=fitted["pca_mean"], axes=fitted["pca_axes"]))
            if "pca_axes" in fitted else values)
  shift, scale = ((fitted["patch_shift"], fitted["patch_scale"]) if "patch_shift" in fitted
                  else (fitted["pca_low"], fitted["pca_span"]))
  return spectra, apply_minmax(source, dict(low=shift, span=scale))


def _regions_masked(split: splits_lib.Split) -> bool:
  """Whether training inputs read a region of the scene (`blocks`, and `npz`: a leakage-free
  split as given) rather than all of it (`pixels`, a user's split file)."""
  return split.info["protocol"] in ("blocks", "npz")


def training_region(split: splits_lib.Split) -> np.ndarray:
  """(H, W) bool: pixels a training input may read. `blocks`: union of the train windows and the
  train pixels; `pixels`: the whole scene."""
  if not _regions_masked(split):
    return np.ones(split.train.shape, bool)
  return (split.train > 0) | audit.coverage(split.train_windows, split.train.shape)


def own_window_rows(split: splits_lib.Split):
  """(M, 6) int32 rows (r, c, r0, c0, r1, c1): each test pixel and its own test tile (the first
  that holds it; the pixel alone if none does), for the masked-input control -- or None where
  training inputs read the whole scene (`pixels`: the control is the test itself).

  Under `blocks` a training input reads the training region (training_region: its own window and
  the other training windows around it) and zeros elsewhere. The control reads a test pixel's
  neighbourhood the same way: the training region plus the pixel's own test tile, zeros at every
  other test tile and at the validation windows. The control's gain over the plain test is what
  the train / test input mismatch costs; nothing in it is leakage."""
  if not _regions_masked(split):
    return None
  pixels = np.argwhere(split.test > 0).astype(np.int32)
  owner = np.full(split.test.shape, -1, np.int64)
  for index in range(len(split.test_tiles) - 1, -1, -1):  # the first tile holding a pixel wins
    r0, c0, r1, c1 = split.test_tiles[index]
    owner[r0:r1, c0:c1] = index
  tiles = np.concatenate([pixels, pixels + 1], axis=1)  # no tile: the pixel's own 1 x 1
  held = owner[pixels[:, 0], pixels[:, 1]]
  tiles[held >= 0] = split.test_tiles[held[held >= 0]]
  return np.concatenate([pixels, tiles], axis=1).astype(np.int32)


def fit_mask(split: splits_lib.Split, fit_stats: str) -> np.ndarray:
  """(H, W) bool: the pixels input statistics are fitted on -- the training pixels ("train"), or
  the whole scene ("scene", the SSAN code's, which lets test pixels shape the inputs)."""
  if fit_stats not in FIT_STATS:
    raise ValueError(f"data.fit_stats must be one of {FIT_STATS}, got {fit_stats!r}.")
  return split.train > 0 if fit_stats == "train" else np.ones(split.train.shape, bool)
