"""A complete split.npz made elsewhere (--config.split.npz): used exactly as given, through the run.

The refusals (leakage, labels, windows outside the scene, window size) are rows of
docs/bad_input.md, run by tests/test_bad_input.py. The DA-IMRN paper's rebuilt IP partitions
(../shared/data/official_ip_partitions) are checked where that folder exists.
"""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, SHARED_DATA, subprocess_env
from hsi_jax import config_util
from hsi_jax.data import split_sources, splits
from hsi_jax.evaluate import metrics

OFFICIAL = SHARED_DATA / "official_ip_partitions"


def _partition_files(tmp_path, ground_truths):
  """Our generator's IP partitions 2 and 3 saved as split.npz under part_{k}/ (a split made
  elsewhere: partitions other than the config's own)."""
  config = config_util.load_config(str(REPO / "configs" / "ip.py"))
  protocol, params = splits.params_from_config(config.split)
  made = {}
  for k in (2, 3):
    split = splits.make_split(ground_truths["ip"].gt, 16, k, protocol, params)
    (tmp_path / f"part_{k}").mkdir()
    np.savez(tmp_path / f"part_{k}" / "split.npz", **split.arrays())
    made[k] = split
  return made


def test_split_npz_is_used_exactly_and_recorded(tmp_path, ground_truths, indian_pines):
  made = _partition_files(tmp_path, ground_truths)
  config = config_util.load_config(str(REPO / "configs" / "ip.py"))
  config.split.npz = str(tmp_path / "part_{partition}" / "split.npz")
  for k, split in made.items():
    config.partition = k
    loaded, _, _ = split_sources.split_from_config(config, labels=indian_pines)
    for name, array in split.arrays().items():
      assert np.array_equal(getattr(loaded, name), array), name
    path = tmp_path / f"part_{k}" / "split.npz"
    assert loaded.info["protocol"] == "npz"
    assert loaded.info["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.info["leakage"]["test"] == dict(inside=0, total=int((split.test > 0).sum()),
                                                  fraction=0.0)


def test_run_on_split_npz_partitions_through_the_launcher(tmp_path, ground_truths):
  """Two partitions' files in one run (seeds_over=partitions, `{partition}` in the path): each
  seed's saved split.npz equals its file array for array; its metrics recomputed from map.npy at
  the file's test pixels equal results.json; the file's sha256 is in results.json."""
  made = _partition_files(tmp_path, ground_truths)
  workdir = tmp_path / "run"
  result = subprocess.run(
      [sys.executable, "launch/train.py", "--config=configs/ip.py:runlocal,model=knn",
       f"--config.split.npz={tmp_path}/part_{{partition}}/split.npz", "--config.partition=2",
       "--config.num_seeds=2", "--config.seeds_over=partitions", f"--workdir={workdir}"],
      cwd=REPO, capture_output=True, text=True, timeout=600, env=subprocess_env(devices=1))
  assert result.returncode == 0, result.stderr[-2000:]
  for index, k in enumerate((2, 3)):
    run_dir = workdir / f"partition{k}"
    with np.load(run_dir / "split.npz") as saved:
      for name, array in made[k].arrays().items():
        assert np.array_equal(saved[name], array), (k, name)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["protocol"] == "npz" and results["partition"] == k
    digest = hashlib.sha256((tmp_path / f"part_{k}" / "split.npz").read_bytes()).hexdigest()
    assert results["split_file"]["file_sha256"] == digest
    prediction = np.load(run_dir / "map.npy")
    test = made[k].test > 0
    confusion = np.asarray(metrics.confusion_matrix(made[k].test[test], prediction[test], 16))
    assert results["num_test_pixels"] == int(test.sum())
    assert results["oa"] == pytest.approx(np.trace(confusion) / confusion.sum(), abs=1e-12)


@pytest.mark.skipif(not OFFICIAL.is_dir(), reason="the rebuilt official partitions are not here")
def test_official_ip_partitions_load_as_given(indian_pines):
  """The DA-IMRN paper's five rebuilt IP partitions pass every check and load array for array."""
  config = config_util.load_config(str(REPO / "configs" / "ip.py"))
  config.split.npz = str(OFFICIAL / "IP_{partition}" / "split.npz")
  for k in range(1, 6):
    config.partition = k
    loaded, _, _ = split_sources.split_from_config(config, labels=indian_pines)
    with np.load(OFFICIAL / f"IP_{k}" / "split.npz") as shipped:
      for name in shipped.files:
        assert np.array_equal(shipped[name], getattr(loaded, name)), (k, name)
