"""The classical family: KNN and RBF-SVM on pixel spectra (scikit-learn; `pip install -e
'.[baselines]'`), fitted on the host, one seed after another, into the same files as the networks.

The SSAN paper's non-neural rows (docs/decisions.md, "Comparison rows"). Inputs are the min-max
normalised spectra of pixel_inputs (statistics from the training pixels, or the scene with
data.fit_stats="scene"). The one hyperparameter grid of each (model.neighbours for KNN;
model.svm_c x model.svm_gamma for the SVM) is searched on the validation pixels; the chosen model,
fitted on the training pixels, labels every pixel of the scene.
"""

from __future__ import annotations

import itertools

import numpy as np

from hsi_jax.data import pixel_inputs, splits as splits_lib

try:
  from sklearn.neighbors import KNeighborsClassifier
  from sklearn.svm import SVC
except ImportError:  # an optional dependency: fit_predict says how to install it
  KNeighborsClassifier = SVC = None


def candidates(model_config) -> list:
  """[(settings for results.json, unfitted classifier)] of the model's grid."""
  if model_config.name == "knn":
    return [({"neighbours": k}, KNeighborsClassifier(n_neighbors=k))
            for k in model_config.neighbours]
  return [({"svm_c": c, "svm_gamma": g}, SVC(C=c, kernel="rbf", gamma=g))
          for c, g in itertools.product(model_config.svm_c, model_config.svm_gamma)]


def check_split(config, split) -> None:
  """A SplitError, before anything is written, for a split this model cannot be fitted on."""
  if not np.any(split.val > 0):
    raise splits_lib.SplitError(f"{config.model.name} chooses its hyperparameters on validation "
                                "pixels; this split has none (set split.val_per_class > 0).")
  if config.model.name == "svm" and len(np.unique(split.train[split.train > 0])) < 2:
    raise splits_lib.SplitError("svm needs training pixels of at least two classes; this split "
                                "has one (use model=knn, or a scene with more classes).")


def fit_predict(config, scene, split) -> tuple[np.ndarray, dict]:
  """-> (prediction (H, W) class ids 1..C for every pixel, info for results.json)."""
  if SVC is None:
    raise ImportError(f"model={config.model.name} needs scikit-learn: pip install -e "
                      "'.[baselines]'")
  if config.data.fit_stats not in pixel_inputs.FIT_STATS:
    raise ValueError(f"data.fit_stats must be one of {pixel_inputs.FIT_STATS}, got "
                     f"{config.data.fit_stats!r}.")
  fit_mask = split.train > 0 if config.data.fit_stats == "train" else np.ones(split.train.shape, bool)
  spectra = pixel_inputs.minmax(scene.cube, fit_mask)
  check_split(config, split)
  train, val = split.train > 0, split.val > 0
  best = None
  for settings, classifier in candidates(config.model):
    classifier.fit(spectra[train], split.train[train])
    val_accuracy = float(np.mean(classifier.predict(spectra[val]) == split.val[val]))
    if best is None or val_accuracy > best[0]:
      best = (val_accuracy, settings, classifier)
  val_accuracy, settings, classifier = best
  flat = spectra.reshape(-1, spectra.shape[-1])
  prediction = np.concatenate([classifier.predict(flat[i:i + 8192])
                               for i in range(0, len(flat), 8192)])
  return (prediction.reshape(split.train.shape).astype(np.int32),
          dict(best_val_accuracy=val_accuracy, chosen=settings, num_params=None))
