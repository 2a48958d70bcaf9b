"""The committed results (results/): each run's metrics are what its committed map says.

For every run folder under results/ holding results.json, map.npy and split.npz: OA / AA / kappa
recomputed from map.npy at the split's test pixels equal results.json, and so does the masked-input
control from control_map.npy where the run has one; the split is the one the run recorded
(split_hash). Runs on a split file (`protocol: npz`: the DA-IMRN paper's partitions and their
alternative reconstructions) hold the arrays of the shared file they name, whose sha256 they
recorded, where ../shared/data is present.
"""

import json

import numpy as np
import pytest

from conftest import REPO, SHARED_DATA
from hsi_jax import fileutil
from hsi_jax.data import split_files
from hsi_jax.evaluate import metrics

RUNS = sorted(path.parent.relative_to(REPO) for path in (REPO / "results").rglob("results.json")
              if (path.parent / "map.npy").exists() and (path.parent / "split.npz").exists())


def _summary(split, prediction, num_classes):
  test = split.test > 0
  return metrics.summarize(np.asarray(metrics.confusion_matrix(split.test[test], prediction[test],
                                                               num_classes)))


def test_there_are_committed_runs_to_check():
  assert len(RUNS) >= 29


@pytest.mark.parametrize("run", RUNS, ids=str)
def test_a_committed_runs_metrics_are_its_maps(run):
  folder = REPO / run
  results = json.loads((folder / "results.json").read_text())
  split = split_files.load_split(folder / "split.npz")
  assert split.content_hash() == results["split_hash"]
  num_classes = len(results["per_class_accuracy"])
  recomputed = _summary(split, np.load(folder / "map.npy"), num_classes)
  for key in metrics.SUMMARY_KEYS:
    assert recomputed[key] == pytest.approx(results[key], abs=1e-12), key
  if (folder / "control_map.npy").exists():
    control = _summary(split, np.load(folder / "control_map.npy"), num_classes)
    for key in metrics.SUMMARY_KEYS:
      assert control[key] == pytest.approx(results["control"][key], abs=1e-12), key
  if results["protocol"] == "npz" and SHARED_DATA.is_dir():  # a file given by --config.split.npz
    shared = REPO / results["split_file"]["file"]  # as the launcher, run from the repository, read it
    assert shared.exists(), shared
    assert fileutil.file_sha256(shared) == results["split_file"]["file_sha256"]
    with np.load(shared) as given, np.load(folder / "split.npz") as saved:
      for name in given.files:
        np.testing.assert_array_equal(saved[name], given[name], err_msg=name)
