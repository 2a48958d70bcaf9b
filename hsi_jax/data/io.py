"""Reading scenes from disk: where to look, MATLAB v5 / v7.3 files, and checks on what was read.

Data directory, in order of precedence: `config.data.root` (the `root` argument), else the
environment variable `HSI_DATA_DIR`, else a per-user cache folder (`$XDG_CACHE_HOME/hsi_jax` or
`~/.cache/hsi_jax`). Files marked `bundled` (Indian Pines) are also found inside the package, so the
default configuration runs offline; so are the PU and SV ground truths (splits need no cube).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Optional

import h5py
import numpy as np
import scipy.io

from hsi_jax import errors
from hsi_jax.data import scenes as scenes_lib

BUNDLED_DIR = pathlib.Path(__file__).resolve().parent / "bundled"


class DataError(errors.UserError, ValueError):
  """A scene file exists but holds something other than what the scene needs."""


@dataclasses.dataclass(frozen=True)
class SceneData:
  """A loaded scene. cube: (H, W, B) float32; gt: (H, W) int32, classes 1..C, 0 = unlabelled."""
  name: str
  cube: Optional[np.ndarray]
  gt: np.ndarray
  class_names: tuple[str, ...]

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


def data_dir(root: Optional[str] = None) -> pathlib.Path:
  """The one directory downloads go to and scenes are read from (see module docstring)."""
  if root:
    return pathlib.Path(root).expanduser()
  if os.environ.get("HSI_DATA_DIR"):
    return pathlib.Path(os.environ["HSI_DATA_DIR"]).expanduser()
  cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return pathlib.Path(cache) / "hsi_jax"


def find_file(scene: scenes_lib.Scene, array_file: scenes_lib.ArrayFile,
              root: Optional[str] = None) -> pathlib.Path:
  """Path of one of a scene's files; FileNotFoundError says where it looked and how to fetch it."""
  candidates = [data_dir(root) / array_file.filename]
  if array_file.bundled:
    candidates.append(BUNDLED_DIR / array_file.filename)
  for path in candidates:
    if path.is_file():
      return path
  looked = "\n".join(f"  {p}" for p in candidates)
  raise FileNotFoundError(
      f"{scene.title}: {array_file.filename} not found. Looked in:\n{looked}\n"
      f"Get it with `python launch/fetch_data.py --scene={scene.name}` (downloads into "
      f"{data_dir(root)}), or put the file there yourself, or point config.data.root / "
      f"HSI_DATA_DIR at the folder that holds it.")


def read_mat_array(path: os.PathLike, key: str) -> np.ndarray:
  """Reads array `key` from a MATLAB v5 (scipy) or v7.3/HDF5 (h5py) file, in MATLAB's axis order."""
  path = pathlib.Path(path)
  try:
    contents = scipy.io.loadmat(path)
  except NotImplementedError:  # scipy refuses v7.3 files: they are HDF5.
    return _read_hdf5_mat(path, key)
  except ValueError as error:
    if h5py.is_hdf5(path):
      return _read_hdf5_mat(path, key)
    raise DataError(f"{path} is not a readable MATLAB file: {error}") from None
  keys = sorted(k for k in contents if not k.startswith("__"))
  if key not in keys:
    raise DataError(f"{path} has no array {key!r}; the keys present are: {', '.join(keys)}.")
  return np.asarray(contents[key])


def _read_hdf5_mat(path: pathlib.Path, key: str) -> np.ndarray:
  with h5py.File(path, "r") as file:
    keys = sorted(k for k in file.keys() if not k.startswith("#"))
    if key not in keys:
      raise DataError(f"{path} has no array {key!r}; the keys present are: {', '.join(keys)}.")
    # MATLAB writes column-major: HDF5 sees the axes reversed.
    return np.asarray(file[key][()]).T


def check_ground_truth(gt: np.ndarray, where: str) -> None:
  if gt.ndim != 2:
    raise DataError(f"{where}: ground truth must be 2-D (H, W), got shape {gt.shape}.")
  if not np.issubdtype(gt.dtype, np.integer):
    if not np.all(np.isfinite(gt)) or np.any(gt != np.round(gt)):
      raise DataError(f"{where}: ground truth must hold integer class ids, got {gt.dtype} values.")
  if gt.min() < 0:
    raise DataError(f"{where}: ground truth holds negative class ids (min {gt.min()}).")
  if not np.any(gt > 0):
    raise DataError(f"{where}: ground truth has no labelled pixel (every value is 0).")


def check_cube(cube: np.ndarray, gt: np.ndarray, num_bands: Optional[int], where: str) -> None:
  if cube.ndim != 3:
    raise DataError(f"{where}: cube must be 3-D (H, W, bands), got shape {cube.shape}.")
  if cube.shape[:2] != gt.shape:
    raise DataError(f"{where}: cube is {cube.shape[0]}x{cube.shape[1]} pixels but the ground "
                    f"truth is {gt.shape[0]}x{gt.shape[1]}; they must cover the same scene.")
  if num_bands is not None and cube.shape[2] != num_bands:
    raise DataError(f"{where}: cube has {cube.shape[2]} bands, the scene needs {num_bands} "
                    "(is it the uncorrected version of the scene?).")
  bad = ~np.isfinite(cube)
  if bad.any():
    rows, cols, bands = np.nonzero(bad)
    raise DataError(f"{where}: cube holds {bad.sum()} NaN/inf values (first at row {rows[0]}, "
                    f"col {cols[0]}, band {bands[0]}); clean or re-download the file.")


def _read_verified(scene, array_file, root, verify: bool) -> np.ndarray:
  path = find_file(scene, array_file, root)
  array = read_mat_array(path, array_file.key)
  if verify and array_file.sha256 is not None:
    digest = scenes_lib.array_hash(array)
    if digest != array_file.sha256:
      raise DataError(
          f"{path}: array {array_file.key!r} has content hash {digest}, expected "
          f"{array_file.sha256}. The file is damaged or a different version; fetch it again with "
          f"`python launch/fetch_data.py --scene={scene.name}`.")
  return array


def load_ground_truth(name: str, root: Optional[str] = None, verify: bool = True) -> SceneData:
  """Ground truth alone (no cube needed): enough to make splits for PU/SV without their cubes."""
  scene = scenes_lib.get_scene(name)
  gt = _read_verified(scene, scene.gt, root, verify)
  check_ground_truth(gt, f"{scene.title} ground truth")
  gt = scenes_lib.remap_classes(gt, scene.raw_class_ids)
  return SceneData(scene.name, None, gt, scene.class_names)


def load_scene(name: str, root: Optional[str] = None, verify: bool = True) -> SceneData:
  """Cube (H, W, B) float32 and ground truth (H, W) int32 with classes 1..C, checked."""
  scene = scenes_lib.get_scene(name)
  labels = load_ground_truth(name, root, verify)
  cube = _read_verified(scene, scene.cube, root, verify)
  check_cube(cube, labels.gt, scene.num_bands, scene.title)
  return dataclasses.replace(labels, cube=cube.astype(np.float32))
