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
from typing import Any

import jax
import numpy as np

from hsi_jax import errors, inference, parallel
from hsi_jax.data import pixel_inputs, splits as splits_lib
from hsi_jax.families import program as program_lib

def _classifiers(name: str):
  """scikit-learn's KNeighborsClassifier and SVC, imported when a model is fitted: an optional
  dependency, and seconds of every launcher's start-up if imported with this module."""
  try:
    from sklearn.neighbors import KNeighborsClassifier  # noqa: PLC0415  (see the docstring)
    from sklearn.svm import SVC  # noqa: PLC0415
  except ImportError as error:
    raise ImportError(f"model={name} needs scikit-learn: pip install -e '.[baselines]'") from error
  return KNeighborsClassifier, SVC


def candidates(model_config) -> list:
  """[(settings for results.json, unfitted classifier)] of the model's grid."""
  KNeighborsClassifier, SVC = _classifiers(model_config.name)  # noqa: N806
  if model_config.name == "knn":
    return [({"neighbours": k}, KNeighborsClassifier(n_neighbors=k))
            for k in model_config.neighbours]
  return [({"svm_c": c, "svm_gamma": g}, SVC(C=c, kernel="rbf", gamma=g))
          for c, g in itertools.product(model_config.svm_c, model_config.svm_gamma)]


ROUND_NAME = "fit"
WINDOWED = False  # per-pixel spectra: a split.npz gives its maps


def make_mesh(config, num_seeds: int):
  """One device row: the seeds are fitted one after another on the host, none is padded."""
  del config, num_seeds
  return parallel.make_mesh(seeds=1)


def check(config, splits, mesh) -> None:
  """A SplitError, before anything is written, for a split this model cannot be fitted on."""
  del mesh
  for split in splits:
    if not np.any(split.val > 0):
      raise splits_lib.SplitError(f"{config.model.name} chooses its hyperparameters on "
                                  "validation pixels; this split has none (set "
                                  "split.val_per_class > 0).")
    if config.model.name == "svm" and len(np.unique(split.train[split.train > 0])) < 2:
      raise splits_lib.SplitError("svm needs training pixels of at least two classes; this "
                                  "split has one (use model=knn, or a scene with more classes).")


def fit(config, spectra: np.ndarray, split) -> tuple[Any, int, float]:
  """Fits the model's grid on the training pixels of `spectra` (H, W, B), chooses on the
  validation pixels -> (the chosen fitted classifier, its index in the grid, its validation
  accuracy)."""
  train, val = split.train > 0, split.val > 0
  best = None
  for index, (_, classifier) in enumerate(candidates(config.model)):
    classifier.fit(spectra[train], split.train[train])
    val_accuracy = float(np.mean(classifier.predict(spectra[val]) == split.val[val]))
    if best is None or val_accuracy > best[1]:
      best = (classifier, val_accuracy, index)
  classifier, val_accuracy, index = best
  return classifier, index, val_accuracy


def fit_preprocessing(config, cube: np.ndarray, split) -> dict:
  """The spectra's min-max over the split's training pixels (or the scene's, data.fit_stats)."""
  return pixel_inputs.fit_minmax(cube, pixel_inputs.fit_mask(split, config.data.fit_stats))


def make_program(config, scene, splits, mesh) -> program_lib.Program:
  """K seeds' fits as a one-round program of the run loop. The state of a seed is the index of
  its chosen candidate; the fitted classifiers stay on the host (refitted, deterministically,
  when a run resumed after its fit)."""
  fitted = [fit_preprocessing(config, scene.cube, split) for split in splits]
  spectra = [pixel_inputs.apply_minmax(scene.cube, f) for f in fitted]
  num_seeds = len(splits)
  settings = [setting for setting, _ in candidates(config.model)]
  val_pixels = [np.nonzero(split.val > 0) for split in splits]
  classifiers = [None] * num_seeds
  device = mesh.devices.flat[0]

  def init(keys):
    del keys
    return jax.device_put(dict(chosen=np.zeros(num_seeds, np.int32)), device)

  def train_chunk(states, data, keys, learning_rate, first):
    del states, keys, learning_rate, first
    chosen = []
    for k, split in enumerate(splits):
      classifiers[k], index, _ = fit(config, data[k], split)
      chosen.append(index)
    return jax.device_put(dict(chosen=np.asarray(chosen, np.int32)), device), {
        "loss_sum": np.zeros(num_seeds), "count": np.ones(num_seeds)}

  def classifier(states, k):
    if classifiers[k] is None:  # resumed after the fit: the chosen candidate, fitted again
      train = splits[k].train > 0
      classifiers[k] = candidates(config.model)[int(np.asarray(states["chosen"])[k])][1]
      classifiers[k].fit(spectra[k][train], splits[k].train[train])
    return classifiers[k]

  def val_predictions(states, data):
    return program_lib.pad_rows([classifier(states, k).predict(data[k][pixels])
                                 for k, pixels in enumerate(val_pixels)], 0)

  def val_accuracy(predictions):
    classes = [split.val[pixels] for split, pixels in zip(splits, val_pixels)]
    correct = [int(np.sum(predictions[k, :len(c)] == c)) for k, c in enumerate(classes)]
    return np.asarray(correct), np.asarray([len(c) for c in classes])

  return program_lib.Program(
      data=spectra, init=init, train_chunk=train_chunk, val_predictions=val_predictions,
      val_accuracy=val_accuracy,
      seed_bundle=lambda best, k: dict(preprocessing=fitted[k], classifier=classifier(best, k)),
      num_rounds=1, steps_per_round=1, seed_steps=(1,) * num_seeds, batch_size=1,
      chunk_steps=1, round_name=ROUND_NAME, compile_chunk=lambda *args: train_chunk,
      compile_note="", num_params=lambda states: None,
      run_info=lambda best, k: dict(chosen=settings[int(np.asarray(best["chosen"])[k])]))


def make_tile_predictor(config, num_classes: int, mesh) -> inference.TilePredictor:
  """KNN / SVM on tiles: each pixel's min-max spectrum through the fitted classifier, on the
  host. Scores are KNN's neighbour shares; the SVM has none (it is fitted without
  probability estimates)."""
  del num_classes, mesh
  name = config.model.name

  def predict(bundle, block, valid, origin, size, scene_shape, scores):
    del valid, origin, scene_shape
    if scores and not hasattr(bundle.classifier, "predict_proba"):
      raise errors.UserError(f"model {name} gives no per-class scores; predict without "
                             "--probabilities.")
    flat = pixel_inputs.apply_minmax(block[:size[0], :size[1]],
                                     bundle.preprocessing).reshape(-1, block.shape[-1])
    classes = np.concatenate([bundle.classifier.predict(flat[i:i + 8192])
                              for i in range(0, len(flat), 8192)]).reshape(size)
    tile_scores = None
    if scores:  # columns of the classes the classifier saw, in a column per class 1..C
      tile_scores = np.zeros((len(flat), bundle.num_classes), np.float32)
      tile_scores[:, bundle.classifier.classes_ - 1] = bundle.classifier.predict_proba(flat)
      tile_scores = tile_scores.reshape(size + (-1,))
    return classes.astype(np.int32), tile_scores

  return inference.TilePredictor(halo=0, align=1, min_size=1, predict=predict)
