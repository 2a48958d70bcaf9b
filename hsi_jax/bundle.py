"""A trained run's inference bundle: everything predicting another scene needs, beside the run.

<run dir>/bundle/ (seed<k>/bundle or partition<p>/bundle for K > 1 runs):
  bundle.json        format, the run's config (model, data, geometry), the scene's class ids (as in
                     its ground-truth file) and names, band count and wavelengths (when known), the
                     training pixels' value range, the seed and partition, library versions
  variables.msgpack  the best state's model variables (params, batch_stats; flax serialisation)
  preprocessing.npz  the fitted input transform: standardisation mean / scale (DA-IMRN with
                     data.standardize), or the min-max and PCA statistics of the pixel models
  classifier.pkl     KNN / SVM: the fitted scikit-learn estimator (pickle: load only a bundle this
                     project wrote; its scikit-learn version is in bundle.json)
The files are written into a temporary directory beside it that is renamed: a bundle is whole or
absent. A work directory finished before bundles existed has none: `launch/export_bundle.py
--workdir=W` makes it from the run's checkpoint (run.export_bundles).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import pathlib
import pickle
import shutil
import tempfile
from typing import Any, Optional

import flax.serialization
import numpy as np

from hsi_jax import errors, fileutil

FORMAT = 1
FILES = ("bundle.json", "variables.msgpack", "preprocessing.npz", "classifier.pkl")


class BundleError(errors.UserError, FileNotFoundError):
  """No usable bundle where one was asked for."""


@dataclasses.dataclass(frozen=True)
class Bundle:
  """meta: bundle.json's object; preprocessing: {name: array} (empty: raw values); variables: the
  model's variables as nested dicts of numpy arrays (None for KNN / SVM); classifier: the fitted
  scikit-learn estimator (None for a network)."""
  meta: dict
  preprocessing: dict[str, np.ndarray]
  variables: Optional[dict] = None
  classifier: Any = None

  @property
  def num_bands(self) -> int:
    return int(self.meta["num_bands"])

  @property
  def num_classes(self) -> int:
    return len(self.meta["class_ids"])


def describe(config: dict, scene, train_values: np.ndarray) -> dict:
  """bundle.json's object for a run of `config` (config_dict form) on `scene` (io.SceneData) whose
  training pixels hold `train_values` (N, B)."""
  versions = {name: importlib.metadata.version(name) for name in ("jax", "flax")}
  if config["model"]["name"] in ("knn", "svm"):
    versions["scikit-learn"] = importlib.metadata.version("scikit-learn")
  return dict(format=FORMAT, config=config, scene=config["scene"],
              class_ids=[int(i) for i in scene.class_ids], class_names=list(scene.class_names),
              num_bands=int(scene.cube.shape[-1]),
              wavelengths=list(scene.wavelengths) if scene.wavelengths else None,
              train_value_range=[float(train_values.min()), float(train_values.max())],
              seed=config["seed"], partition=config["partition"], versions=versions)


def save(directory: pathlib.Path, bundle: Bundle) -> None:
  """Writes the bundle into `directory` (replacing one there), whole or not at all."""
  directory = pathlib.Path(directory)
  if not fileutil.is_writer():
    return
  directory.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp",
                                      dir=directory.parent))
  try:
    (tmp / "bundle.json").write_text(json.dumps(bundle.meta, indent=1) + "\n")
    with open(tmp / "preprocessing.npz", "wb") as file:
      np.savez(file, **bundle.preprocessing)
    if bundle.variables is not None:
      (tmp / "variables.msgpack").write_bytes(flax.serialization.msgpack_serialize(
          flax.serialization.to_state_dict(bundle.variables)))
    if bundle.classifier is not None:
      (tmp / "classifier.pkl").write_bytes(pickle.dumps(bundle.classifier))
    if directory.exists():
      shutil.rmtree(directory)
    tmp.rename(directory)
  finally:
    if tmp.exists():
      shutil.rmtree(tmp)


def load(directory: pathlib.Path, export_hint: str = "") -> Bundle:
  """The bundle in `directory`; a BundleError saying what is missing (and `export_hint`, the
  command that makes one) when there is none."""
  directory = pathlib.Path(directory)
  if not (directory / "bundle.json").is_file():
    raise BundleError(f"no inference bundle at {directory}" + (f"; {export_hint}" if export_hint
                                                               else "."))
  meta = json.loads((directory / "bundle.json").read_text())
  if meta.get("format") != FORMAT:
    raise BundleError(f"{directory} holds a bundle of format {meta.get('format')}, this hsi_jax "
                      f"reads format {FORMAT}; make it again with launch/export_bundle.py.")
  with np.load(directory / "preprocessing.npz") as data:
    preprocessing = {name: data[name] for name in data.files}
  variables = classifier = None
  if (directory / "variables.msgpack").is_file():
    variables = flax.serialization.msgpack_restore((directory / "variables.msgpack").read_bytes())
  if (directory / "classifier.pkl").is_file():
    classifier = pickle.loads((directory / "classifier.pkl").read_bytes())
  if variables is None and classifier is None:
    raise BundleError(f"{directory} holds neither variables.msgpack nor classifier.pkl; make the "
                      "bundle again with launch/export_bundle.py.")
  return Bundle(meta, preprocessing, variables, classifier)
