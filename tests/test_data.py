"""Scene registry, loader, checks on bad files, downloads from a local mirror, the split CLI."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import scipy.io

from hsi_jax import fileutil
from hsi_jax.data import fetch, io, scenes

from conftest import REPO, SHARED_DATA, subprocess_env


def test_bundled_indian_pines_loads_and_verifies(indian_pines):
  assert indian_pines.cube.shape == (145, 145, 200) and indian_pines.cube.dtype == np.float32
  assert indian_pines.gt.shape == (145, 145) and indian_pines.gt.dtype == np.int32
  assert np.bincount(indian_pines.gt.ravel()).tolist() == [
      10776, 46, 1428, 830, 237, 483, 730, 28, 478, 20, 972, 2455, 593, 205, 1265, 386, 93]
  assert indian_pines.cube[0, 0, :5].tolist() == [3172, 4142, 4506, 4279, 4782]
  assert indian_pines.class_names[0] == "Alfalfa" and indian_pines.num_classes == 16


def registered_files():
  """{filename: (scene, array file, expected shape)} over every file the registry names."""
  return {f.filename: (scene, f, shape) for scene in scenes.SCENES.values()
          for f, shape in ((scene.cube, scene.shape + (scene.num_bands,)), (scene.gt, scene.shape))}


def registry_hash(scene, array_file, array):
  """The registry's content hash, computed here: a ground truth's over its ids as int32."""
  return scenes.array_hash(array.astype(np.int32) if array_file is scene.gt else array)


def test_bundled_files_verify_against_the_registry():
  """In a clean clone too: the files the package ships are the registry's bundled ones, and each
  holds the array it describes (content hash, shape, bands, class ids)."""
  registry = registered_files()
  bundled = sorted(name for name, (_, f, _) in registry.items() if f.bundled)
  assert bundled == ["Indian_pines_corrected.mat", "Indian_pines_gt.mat", "PaviaU_gt.mat",
                     "Salinas_gt.mat"]
  assert sorted(p.name for p in io.BUNDLED_DIR.glob("*.mat")) == bundled
  for name in bundled:
    scene, array_file, shape = registry[name]
    array = io.read_mat_array(io.BUNDLED_DIR / name, array_file.key)
    assert array_file.sha256 is not None, name
    assert registry_hash(scene, array_file, array) == array_file.sha256, name
    assert array.shape == shape, name
    if array_file is scene.gt:
      assert set(np.unique(array).tolist()) == {0, *scene.raw_class_ids}, name


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_shared_data_matches_the_registry_and_the_bundled_files():
  registry = registered_files()
  shared = sorted(SHARED_DATA.glob("*.mat"))
  assert shared, f"no .mat file in {SHARED_DATA}"
  for path in shared:
    assert path.name in registry, f"{path.name} is not in the scene registry"
    scene, array_file, shape = registry[path.name]
    array = io.read_mat_array(path, array_file.key)
    assert array.shape == shape, path.name
    if array_file.sha256 is not None:
      assert registry_hash(scene, array_file, array) == array_file.sha256, path.name
    if array_file.bundled:
      bundled = io.read_mat_array(io.BUNDLED_DIR / path.name, array_file.key)
      assert bundled.dtype == array.dtype and np.array_equal(bundled, array), path.name


def test_array_hash_ignores_file_format_and_byte_order():
  a = np.arange(12, dtype=np.uint16).reshape(3, 4)
  assert scenes.array_hash(a) == scenes.array_hash(np.asfortranarray(a))
  assert scenes.array_hash(a) == scenes.array_hash(a.astype(">u2"))
  assert scenes.array_hash(a) != scenes.array_hash(a.astype(np.int32))
  assert scenes.array_hash(a) != scenes.array_hash(a.reshape(4, 3))


def test_data_dir_precedence(tmp_path, monkeypatch):
  monkeypatch.setenv("HSI_DATA_DIR", str(tmp_path / "env"))
  assert io.data_dir(str(tmp_path / "cfg")) == tmp_path / "cfg"
  assert io.data_dir() == tmp_path / "env"
  monkeypatch.delenv("HSI_DATA_DIR")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  assert io.data_dir() == tmp_path / "cache" / "hsi_jax"


def test_missing_file_says_where_and_how(tmp_path):
  with pytest.raises(FileNotFoundError) as error:
    io.load_scene("pu", root=str(tmp_path))
  message = str(error.value)
  assert "PaviaU.mat not found" in message and str(tmp_path / "PaviaU.mat") in message
  assert "python launch/fetch_data.py --scene=pu" in message


def test_ground_truth_alone_is_enough_for_pu(tmp_path):
  labels = io.load_ground_truth("pu", root=str(tmp_path))  # bundled gt, no cube anywhere
  assert labels.cube is None and labels.gt.shape == (610, 340)
  assert np.bincount(labels.gt.ravel())[1:].tolist() == [6631, 18649, 2099, 3064, 1345, 5029,
                                                         1330, 3682, 947]


def write_pu(root, cube, gt, cube_key="paviaU"):
  scipy.io.savemat(root / "PaviaU.mat", {cube_key: cube})
  scipy.io.savemat(root / "PaviaU_gt.mat", {"paviaU_gt": gt})


@pytest.fixture
def pu_gt():
  return io.load_ground_truth("pu").gt.astype(np.uint8)


def test_user_supplied_cube_loads(tmp_path, pu_gt):
  cube = np.random.default_rng(0).integers(0, 8000, (610, 340, 103)).astype(np.uint16)
  write_pu(tmp_path, cube, pu_gt)
  scene = io.load_scene("pu", root=str(tmp_path))
  assert scene.cube.dtype == np.float32 and np.array_equal(scene.cube, cube)


def test_wrong_key_lists_keys(tmp_path, pu_gt):
  write_pu(tmp_path, np.zeros((610, 340, 103), np.uint16), pu_gt, cube_key="pavia_u")
  with pytest.raises(io.DataError, match="no array 'paviaU'; the keys present are: pavia_u"):
    io.load_scene("pu", root=str(tmp_path))


def test_cube_gt_shape_mismatch(tmp_path, pu_gt):
  write_pu(tmp_path, np.zeros((600, 340, 103), np.uint16), pu_gt)
  with pytest.raises(io.DataError, match="600x340 pixels but the ground truth is 610x340"):
    io.load_scene("pu", root=str(tmp_path))


def test_wrong_band_count(tmp_path, pu_gt):
  write_pu(tmp_path, np.zeros((610, 340, 100), np.uint16), pu_gt)
  with pytest.raises(io.DataError, match="100 bands, the scene needs 103"):
    io.load_scene("pu", root=str(tmp_path))


def test_nan_in_cube(tmp_path, pu_gt):
  cube = np.ones((610, 340, 103), np.float32)
  cube[5, 6, 7] = np.nan
  write_pu(tmp_path, cube, pu_gt)
  with pytest.raises(io.DataError, match="1 NaN/inf values \\(first at row 5, col 6, band 7\\)"):
    io.load_scene("pu", root=str(tmp_path))


def test_gt_without_labels(tmp_path):
  scipy.io.savemat(tmp_path / "PaviaU_gt.mat", {"paviaU_gt": np.zeros((610, 340), np.uint8)})
  with pytest.raises(io.DataError, match="no labelled pixel"):
    io.load_ground_truth("pu", root=str(tmp_path), verify=False)


def test_damaged_file_fails_hash(tmp_path, pu_gt):
  damaged = pu_gt.copy()
  damaged[0, 0] = 1
  scipy.io.savemat(tmp_path / "PaviaU_gt.mat", {"paviaU_gt": damaged})
  with pytest.raises(io.DataError, match="content hash"):
    io.load_ground_truth("pu", root=str(tmp_path))


def write_matlab_v73(path, arrays):
  """A .mat file as MATLAB's `save -v7.3` writes it: HDF5 behind a 512-byte user block holding
  the MAT header (116 bytes of text, 8 of subsystem offset, version 0x0200, endian 'IM'), each
  array stored column-major (the dataset holds its transpose) with its MATLAB_class."""
  with h5py.File(path, "w", userblock_size=512) as file:
    for key, array in arrays.items():
      dataset = file.create_dataset(key, data=np.ascontiguousarray(array.T))
      matlab_class = "double" if array.dtype == np.float64 else array.dtype.name
      dataset.attrs["MATLAB_class"] = np.bytes_(matlab_class)
    file.create_group("#refs#")  # where MATLAB keeps cell / struct contents: not an array
  text = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Nov 23 10:00:00 2026 "
          b"HDF5 schema 1.00 .")
  header = text.ljust(116) + bytes(8) + b"\x00\x02" + b"IM"
  with open(path, "r+b") as file:
    file.write(header.ljust(512, b"\x00"))


def test_matlab_v73_file(tmp_path, pu_gt):
  """v7.3 files are HDF5 with MATLAB's column-major axes: read back in the original order."""
  path = tmp_path / "PaviaU_gt.mat"
  write_matlab_v73(path, {"paviaU_gt": pu_gt})
  header = path.read_bytes()[:512]
  assert header.startswith(b"MATLAB 7.3 MAT-file") and header[124:128] == b"\x00\x02IM"
  with pytest.raises(NotImplementedError):  # scipy refuses it: the HDF5 reader is the one tested
    scipy.io.loadmat(path)
  with h5py.File(path, "r") as file:
    assert file["paviaU_gt"].shape == (340, 610)  # as MATLAB stores it
    assert file["paviaU_gt"].attrs["MATLAB_class"] == b"uint8"
  gt = io.read_mat_array(path, "paviaU_gt")
  assert gt.shape == (610, 340) and gt.dtype == np.uint8 and np.array_equal(gt, pu_gt)
  labels = io.load_ground_truth("pu", root=str(tmp_path))  # hash verifies: same values
  assert labels.gt.shape == (610, 340)
  assert np.bincount(labels.gt.ravel())[1:].tolist() == np.bincount(pu_gt.ravel())[1:].tolist()
  with pytest.raises(io.DataError, match="keys present are: paviaU_gt\\.$"):
    io.read_mat_array(path, "gt")
  # A 3-D cube and a double array: every axis comes back where MATLAB had it.
  cube = np.arange(4 * 5 * 3, dtype=np.uint16).reshape(4, 5, 3) * 7
  values = np.random.default_rng(0).normal(size=(2, 6))
  write_matlab_v73(tmp_path / "cube.mat", {"cube": cube, "values": values})
  with pytest.raises(NotImplementedError):
    scipy.io.loadmat(tmp_path / "cube.mat")
  read_cube = io.read_mat_array(tmp_path / "cube.mat", "cube")
  assert read_cube.shape == (4, 5, 3) and read_cube.dtype == np.uint16
  assert np.array_equal(read_cube, cube) and read_cube[1, 2, 0] == 7 * (1 * 15 + 2 * 3 + 0)
  read_values = io.read_mat_array(tmp_path / "cube.mat", "values")
  assert read_values.dtype == np.float64 and np.array_equal(read_values, values)


def test_sparse_class_ids_are_remapped(ground_truths):
  """A sub-scene whose ground truth only uses some parent ids (as Salinas-A does: 1, 10..14)."""
  sv = ground_truths["sv"].gt
  sub = np.where(np.isin(sv, [1, 10, 11, 12, 13, 14]), sv, 0)
  remapped = scenes.remap_classes(sub, (1, 10, 11, 12, 13, 14))
  assert set(np.unique(remapped)) == {0, 1, 2, 3, 4, 5, 6}
  assert np.array_equal(remapped == 3, sub == 11)
  with pytest.raises(ValueError, match=r"class ids \[2\]"):
    scenes.remap_classes(np.array([[0, 2]]), (1, 10))


def test_fetch_from_local_mirror(tmp_path, pu_gt):
  mirror, target = tmp_path / "mirror", tmp_path / "data"
  mirror.mkdir()
  cube = np.ones((610, 340, 103), np.uint16)
  write_pu(mirror, cube, pu_gt)
  logged = []
  paths = fetch.fetch_scene("pu", root=str(target), base_url=mirror.as_uri(), log=logged.append)
  assert [p.name for p in paths] == ["PaviaU.mat", "PaviaU_gt.mat"]
  assert np.array_equal(io.load_scene("pu", root=str(target)).cube, cube)
  assert sorted(os.listdir(target)) == ["PaviaU.mat", "PaviaU_gt.mat"]  # no temporary left
  fetch.fetch_scene("pu", root=str(target), base_url=mirror.as_uri(), log=logged.append)
  assert logged[-1].endswith("present, verified")


def test_fetch_rejects_a_bad_download(tmp_path, pu_gt):
  mirror, target = tmp_path / "mirror", tmp_path / "data"
  mirror.mkdir()
  damaged = pu_gt.copy()
  damaged[0, 0] = 3
  write_pu(mirror, np.ones((2, 2, 2), np.uint16), damaged)
  with pytest.raises(io.DataError, match="content hash"):
    fetch.fetch_scene("pu", root=str(target), base_url=mirror.as_uri(), log=lambda _: None)
  assert not (target / "PaviaU_gt.mat").exists()
  assert [p.name for p in target.iterdir()] == ["PaviaU.mat"]  # the good file alone


def run_launch(*args):
  return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                        env=subprocess_env())


def test_make_splits_and_audit_cli(tmp_path):
  result = run_launch("launch/make_splits.py", "--config=configs/sv.py", "--partition=2",
                      f"--out={tmp_path}")
  assert result.returncode == 0, result.stderr
  assert "split made in" in result.stdout
  assert sorted(os.listdir(tmp_path)) == ["split.json", "split.npz", "split.png"]
  info = json.loads((tmp_path / "split.json").read_text())
  assert info["protocol"] == "blocks" and info["partition"] == 2 and info["scene"] == "sv"
  assert 2000 <= info["totals"]["train"] <= 2100 and len(info["classes"]) == 16
  with np.load(tmp_path / "split.npz") as data:
    assert {"train", "leaked", "val", "test", "train_windows", "val_windows",
            "test_tiles"} <= set(data.files)
    assert data["train_windows"].dtype == np.int32 and data["train_windows"].shape[1] == 4
  audit_out = run_launch("launch/audit_split.py", str(tmp_path / "split.npz"))
  assert audit_out.returncode == 0, audit_out.stderr
  fractions = next(line for line in audit_out.stdout.splitlines()
                   if line.startswith("leaked fraction")).split()[2:]
  assert fractions == ["0.00", "%", "0.00", "%"]  # val and test: no pixel inside a training input


def test_make_splits_cli_rejects_unknown_option(tmp_path):
  result = run_launch("launch/make_splits.py", "--config=configs/ip.py:protocl=pixels",
                      f"--out={tmp_path}")
  # A user's mistake: exit status 2 and one line naming the typo and the options it could mean.
  assert result.returncode == 2, result.stderr
  assert result.stderr.count("\n") == 1 and result.stderr.startswith(
      "error: Unknown config option 'protocl' in 'protocl=pixels'; valid options: "
      "model (default 'da_imrn'), protocol (default 'blocks')"), result.stderr
  assert not os.listdir(tmp_path)


def test_files_written_atomically_get_the_users_umask(tmp_path):
  previous = os.umask(0o027)
  try:
    fileutil.write_json(tmp_path / "results.json", {"oa": 1.0})
  finally:
    os.umask(previous)
  assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o640
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
