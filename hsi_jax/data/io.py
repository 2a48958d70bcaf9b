"""Reading scenes from disk: where to look, MATLAB v5 / v7.3, .npz, GeoTIFF and ENVI files, and
checks on what was read.

A GeoTIFF / ENVI file (data/rasters.py) holds one array, under the key "": a cube of several bands
or a single-band class map. `open_cube` gives a windowed reader of a cube of any of these formats.

Data directory, in order of precedence: `config.data.root` (the `root` argument), else the
environment variable `HSI_DATA_DIR`, else a per-user cache folder (`$XDG_CACHE_HOME/hsi_jax` or
`~/.cache/hsi_jax`). Files marked `bundled` (Indian Pines) are also found inside the package, so the
default configuration runs offline; so are the PU and SV ground truths (splits need no cube).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import struct
import zipfile
import zlib
from typing import Optional

import h5py
import numpy as np
import scipy.io

from hsi_jax import errors
from hsi_jax.data import rasters, scenes as scenes_lib

BUNDLED_DIR = pathlib.Path(__file__).resolve().parent / "bundled"


DataError = errors.DataError  # a scene file exists but holds something other than what is needed


@dataclasses.dataclass(frozen=True)
class SceneData:
  """A loaded scene. cube: (H, W, B) float32; gt: (H, W) int32, classes 1..C, 0 = unlabelled;
  class_ids[i]: the id in the ground-truth file of class i + 1 (the Scene's raw_class_ids)."""
  name: str
  cube: Optional[np.ndarray]
  gt: np.ndarray
  class_names: tuple[str, ...]
  class_ids: tuple[int, ...]
  warnings: tuple[str, ...] = ()  # what a run should say about the data (and record)
  wavelengths: Optional[tuple[float, ...]] = None  # per band, when the cube's file names them

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
  candidates = [data_dir(root) / array_file.filename]  # an absolute filename stays as it is
  if array_file.bundled:
    candidates.append(BUNDLED_DIR / array_file.filename)
  for path in candidates:
    if path.is_file():
      return path
  looked = "\n".join(f"  {p}" for p in candidates)
  if not array_file.url:  # a user's own file (configs/custom.py)
    raise FileNotFoundError(f"{scene.title}: no file at {candidates[0]}; check the path given "
                            "in the config (cube=..., gt=...).")
  raise FileNotFoundError(
      f"{scene.title}: {array_file.filename} not found. Looked in:\n{looked}\n"
      f"Get it with `python launch/fetch_data.py --scene={scene.name}` (downloads into "
      f"{data_dir(root)}), or put the file there yourself, or point config.data.root / "
      f"HSI_DATA_DIR at the folder that holds it.")


# What numpy, scipy and h5py raise on an empty, truncated or garbage file.
_UNREADABLE = (ValueError, OSError, EOFError, IndexError, struct.error, zlib.error,
               zipfile.BadZipFile, scipy.io.matlab.MatReadError)


def _unreadable(path: pathlib.Path, error: Exception) -> DataError:
  kind = ".npz archive" if path.suffix == ".npz" else "MATLAB .mat file (v5 or v7.3)"
  return DataError(f"{path} is not a readable {kind} ({type(error).__name__}: "
                   f"{' '.join(str(error).split())[:120]}); is it truncated or of another format? "
                   "Write or download it again.")


def _check_file(path: pathlib.Path) -> None:
  if not path.is_file():
    raise FileNotFoundError(f"No file at {path}.")
  if path.stat().st_size == 0:
    raise DataError(f"{path} is empty (0 bytes); write or download it again.")


def read_arrays(path: os.PathLike, keys=None) -> dict[str, np.ndarray]:
  """The arrays of a user's file (those named in `keys`, or all): MATLAB v5 (scipy) or v7.3 / HDF5
  (h5py, in MATLAB's axis order) for `.mat`, numpy for `.npz`; arrays not asked for are not read.
  A missing file is a FileNotFoundError; an empty, truncated or garbage one a DataError naming
  the file."""
  path = pathlib.Path(path)
  if rasters.is_raster(path):
    return {"": rasters.read_raster(path)} if keys is None or "" in keys else {}
  _check_file(path)
  try:
    if path.suffix == ".npz":
      with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files if keys is None or name in keys}
    if h5py.is_hdf5(path):
      return _read_hdf5_mat(path, keys)
    contents = scipy.io.loadmat(path, variable_names=keys)
    return {k: np.asarray(v) for k, v in contents.items() if not k.startswith("__")}
  except _UNREADABLE as error:
    raise _unreadable(path, error) from None


def array_shapes(path: os.PathLike) -> dict[str, tuple[int, ...]]:
  """{key: shape} of every array of a .mat / .npz file, read from its headers (a cube is not
  loaded); errors as read_arrays."""
  path = pathlib.Path(path)
  if rasters.is_raster(path):
    return {"": rasters.raster_shape(path)}
  _check_file(path)
  try:
    if path.suffix == ".npz":
      with zipfile.ZipFile(path) as archive:
        shapes = {}
        for name in archive.namelist():
          with archive.open(name) as member:
            version = np.lib.format.read_magic(member)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)(member)
          shapes[name.removesuffix(".npy")] = tuple(header[0])
        return shapes
    if h5py.is_hdf5(path):
      with h5py.File(path, "r") as file:
        return {k: tuple(reversed(v.shape)) for k, v in file.items()
                if not k.startswith("#") and isinstance(v, h5py.Dataset)}
    return {name: tuple(shape) for name, shape, _ in scipy.io.whosmat(path)}
  except _UNREADABLE as error:
    raise _unreadable(path, error) from None


def pick_key(keys, key: str, path, option: str) -> str:
  """`key` if the file has it; "" picks the file's only array; anything else is a DataError
  listing the keys present and naming the config option that chooses one."""
  keys = sorted(keys)
  if key in keys or (not key and len(keys) == 1):
    return key or keys[0]
  if not key:
    raise DataError(f"{path} holds {len(keys)} arrays ({', '.join(keys) or 'none'}); say which "
                    f"one with {option}=...")
  raise DataError(f"{path} has no array {key!r}; the keys present are: "
                  f"{', '.join(keys) or 'none'}.")


def open_cube(path: os.PathLike, key: str = "") -> rasters.CubeReader:
  """A windowed reader of the (H, W, B) cube at `path`: GeoTIFF / ENVI read a window at a time
  (rasters.open_raster), a .mat / .npz array (`key`; "" = the file's only one) loaded whole."""
  if rasters.is_raster(path):
    if key:
      raise DataError(f"{path} is a GeoTIFF / ENVI file: it holds one cube, named by no key; "
                      "leave the key empty.")
    return rasters.open_raster(path)
  return rasters.ArrayReader(read_mat_array(path, key), str(path))


def read_mat_array(path: os.PathLike, key: str) -> np.ndarray:
  """Array `key` of a .mat (or .npz) file (`read_arrays`); a missing key names those present.
  key "" takes the file's one array."""
  key = pick_key(array_shapes(path), key, path, "the key")
  return read_arrays(path, [key])[key]


def _read_hdf5_mat(path: pathlib.Path, keys=None) -> dict[str, np.ndarray]:
  with h5py.File(path, "r") as file:
    # MATLAB writes column-major: HDF5 sees the axes reversed. '#refs#' and groups hold no array.
    return {k: np.asarray(v[()]).T for k, v in file.items() if not k.startswith("#")
            and isinstance(v, h5py.Dataset) and (keys is None or k in keys)}


def class_map(array: np.ndarray, where: str) -> np.ndarray:
  """An (H, W) map of class ids (0 = none) as int32. Floats holding whole numbers are accepted
  (MATLAB saves doubles); fractional, negative or non-finite ids are a DataError."""
  array = np.asarray(array)
  if array.ndim != 2:
    raise DataError(f"{where} must be a 2-D (H, W) map of class ids, got shape {array.shape}.")
  if array.dtype.kind not in "biuf" or array.size == 0:
    raise DataError(f"{where} must hold integer class ids, got {array.size} values of type "
                    f"{array.dtype}.")
  if array.dtype.kind == "f":
    bad = ~np.isfinite(array) | (array != np.round(array))
    if bad.any():
      row, col = np.argwhere(bad)[0]
      raise DataError(f"{where} must hold whole class ids; it holds {array[row, col]:g} at row "
                      f"{row}, col {col} ({bad.sum()} such values).")
  if array.max() > np.iinfo(np.int32).max:
    raise DataError(f"{where} holds class ids up to {array.max():g}; ids must stay below 2^31.")
  if array.min() < 0:
    row, col = np.argwhere(array < 0)[0]
    raise DataError(f"{where} holds negative class ids ({array[row, col]:g} at row {row}, col "
                    f"{col}); 0 means unlabelled, classes are 1, 2, ...")
  return array.astype(np.int32)


def check_ground_truth(gt: np.ndarray, where: str) -> np.ndarray:
  """The ground truth as an int32 class map (`class_map`) with at least one labelled pixel."""
  gt = class_map(gt, f"{where}: ground truth")
  if not np.any(gt > 0):
    raise DataError(f"{where}: ground truth has no labelled pixel (every value is 0).")
  return gt


def check_cube_shape(shape, gt_shape, num_bands: Optional[int], where: str) -> None:
  """A cube's shape against its ground truth's (and the scene's band count, when it has one)."""
  if len(shape) != 3:
    raise DataError(f"{where}: cube must be 3-D (H, W, bands), got shape {tuple(shape)}.")
  if tuple(shape[:2]) != tuple(gt_shape):
    raise DataError(f"{where}: cube is {shape[0]}x{shape[1]} pixels but the ground "
                    f"truth is {gt_shape[0]}x{gt_shape[1]}; they must cover the same scene.")
  if num_bands is not None and shape[2] != num_bands:
    raise DataError(f"{where}: cube has {shape[2]} bands, the scene needs {num_bands} "
                    "(is it the uncorrected version of the scene?).")


def check_cube(cube: np.ndarray, gt: np.ndarray, num_bands: Optional[int], where: str) -> None:
  """Shape (check_cube_shape), a numeric type and no NaN / inf."""
  check_cube_shape(cube.shape, gt.shape, num_bands, where)
  if cube.dtype.kind not in "biuf":
    raise DataError(f"{where}: cube must hold numbers, got values of type {cube.dtype}.")
  bad = ~np.isfinite(cube)
  if bad.any():
    rows, cols, bands = np.nonzero(bad)
    raise DataError(f"{where}: cube holds {bad.sum()} NaN/inf values (first at row {rows[0]}, "
                    f"col {cols[0]}, band {bands[0]}); clean or re-download the file.")


def _registry_shape(shape, scene: scenes_lib.Scene, array_file, path) -> list[str]:
  """A scene of another size than the registry's: an error where a content hash is registered
  (the file cannot verify), a warning where none is (a cropped or re-cut scene still runs)."""
  if tuple(shape) == tuple(scene.shape):
    return []
  message = (f"{path}: {scene.title} is {scene.shape[0]}x{scene.shape[1]} pixels in the "
             f"registry, this file's is {shape[0]}x{shape[1]}")
  if array_file.sha256 is not None:
    raise DataError(f"{message}: a cropped or different scene. Use the full scene (`python "
                    f"launch/fetch_data.py --scene={scene.name}`).")
  return [f"{message}; it is not the published scene, so its numbers are not comparable with "
          "published ones."]


def _verify_hash(array: np.ndarray, scene: scenes_lib.Scene, array_file, path) -> None:
  if array_file.sha256 is None:
    return
  digest = array_file.content_hash(array)
  if digest != array_file.sha256:
    raise DataError(
        f"{path}: array {array_file.key!r} has content hash {digest}, expected "
        f"{array_file.sha256}, although its shape and values pass every check. It is a different "
        f"version of the file; fetch it again with `python launch/fetch_data.py "
        f"--scene={scene.name}`.")


def class_names_from(path: str, raw_ids) -> tuple[str, ...]:
  """Names from a text file of one name a line (blank lines ignored), in increasing raw-id order;
  no file: "class <raw id>"."""
  if not path:
    return tuple(f"class {raw_id}" for raw_id in raw_ids)
  file = pathlib.Path(path).expanduser()
  if not file.is_file():
    raise FileNotFoundError(f"No class-name file at {file} (classes=...).")
  names = [line.strip() for line in file.read_text().splitlines() if line.strip()]
  if len(names) != len(raw_ids):
    raise DataError(f"{file} names {len(names)} classes, the ground truth holds {len(raw_ids)} "
                    f"(ids {list(raw_ids)}): give one name a line for each, in that order.")
  return tuple(names)


def custom_scene(data) -> scenes_lib.Scene:
  """A user's own scene (configs/custom.py), described from its files when it is used: config.data
  records only the choices (cube, gt, cube_key, gt_key, classes). Reads the ground truth and the
  cube's header (not the cube): size, band count, the classes present (raw ids, numbered 1..C in
  increasing order), their names (data.classes, a file of one name a line; "" = "class <id>"), the
  bands of an RGB composite (scenes.display_bands, from the wavelengths a GeoTIFF / ENVI header
  names) and the array keys ("" = the file's only
  array). Errors name the file and the option that fixes it."""
  cube_path, gt_path = (pathlib.Path(p).expanduser().resolve() for p in (data.cube, data.gt))
  for option, path in (("cube", cube_path), ("gt", gt_path)):
    if not path.is_file():
      raise FileNotFoundError(f"no file at {path} (configs/custom.py:{option}=...).")
  gt_key = pick_key(array_shapes(gt_path), data.gt_key, gt_path, "gt_key")
  labels = check_ground_truth(read_arrays(gt_path, [gt_key])[gt_key], str(gt_path))
  shapes = array_shapes(cube_path)
  cube_key = pick_key(shapes, data.cube_key, cube_path, "cube_key")
  check_cube_shape(shapes[cube_key], labels.shape, None, f"{cube_path} (ground truth {gt_path})")
  num_bands = int(shapes[cube_key][2])
  raw_ids = tuple(int(i) for i in np.unique(labels[labels > 0]))
  return scenes_lib.Scene(
      name=scenes_lib.CUSTOM, title=f"custom scene {gt_path.name}",
      cube=scenes_lib.ArrayFile(str(cube_path), cube_key, "", None),
      gt=scenes_lib.ArrayFile(str(gt_path), gt_key, "", None, class_map=True),
      shape=tuple(labels.shape), num_bands=num_bands,
      class_names=class_names_from(data.classes, raw_ids),
      rgb_bands=scenes_lib.display_bands(num_bands, cube_wavelengths(cube_path)),
      class_ids=raw_ids)


def scene_of(config) -> scenes_lib.Scene:
  """The config's scene: a registered one by name, or (config.scene == "custom") the user's files
  named in config.data, described from the files now (custom_scene). DA-IMRN ends its six stages
  at 3 bands: a custom cube of fewer is a DataError naming the fix."""
  if config.scene != scenes_lib.CUSTOM:
    return scenes_lib.get_scene(config.scene)
  scene = custom_scene(config.data)
  if config.model.name == "da_imrn" and scene.num_bands < 3:
    raise DataError(f"DA-IMRN needs a cube of at least 3 bands, {scene.cube.filename} has "
                    f"{scene.num_bands}; use another model=.")
  return scene


def load_config_labels(config) -> SceneData:
  """load_ground_truth for the config's scene (scene_of), from config.data.root."""
  return load_ground_truth(scene_of(config), config.data.root or None)


def load_config_scene(config) -> SceneData:
  """load_scene for the config's scene (scene_of), from config.data.root."""
  return load_scene(scene_of(config), config.data.root or None)


def load_ground_truth(name, root: Optional[str] = None, verify: bool = True) -> SceneData:
  """Ground truth alone (no cube needed): enough to make splits for PU/SV without their cubes.
  `name` is a registered scene's name or a Scene. The checks that say what is wrong (shape, class
  ids) come before the content hash."""
  scene = scenes_lib.get_scene(name)
  path = find_file(scene, scene.gt, root)
  raw = read_mat_array(path, scene.gt.key)
  gt = check_ground_truth(raw, f"{path} ({scene.title})")
  warnings = _registry_shape(gt.shape, scene, scene.gt, path)
  unknown = scenes_lib.unknown_ids(gt, scene.raw_class_ids)
  if unknown:
    raise DataError(f"{path}: ground truth holds class ids {unknown} that {scene.title} does not "
                    f"have (its ids: {list(scene.raw_class_ids)}); is it another scene's file?")
  if verify:
    _verify_hash(raw, scene, scene.gt, path)
  gt = scenes_lib.remap_classes(gt, scene.raw_class_ids)
  return SceneData(scene.name, None, gt, scene.class_names, tuple(scene.raw_class_ids),
                   tuple(warnings))


def load_scene(name, root: Optional[str] = None, verify: bool = True) -> SceneData:
  """Cube (H, W, B) float32 and ground truth (H, W) int32 with classes 1..C, checked (shape, bands,
  values) before their content hashes."""
  scene = scenes_lib.get_scene(name)
  labels = load_ground_truth(name, root, verify)
  path = find_file(scene, scene.cube, root)
  cube = read_mat_array(path, scene.cube.key)
  check_cube(cube, labels.gt, scene.num_bands, f"{path} ({scene.title})")
  if verify:
    _verify_hash(cube, scene, scene.cube, path)
  return dataclasses.replace(labels, cube=cube.astype(np.float32),
                             wavelengths=cube_wavelengths(path))


def cube_wavelengths(path: os.PathLike) -> Optional[tuple[float, ...]]:
  """The bands' wavelengths a GeoTIFF / ENVI header names; None for other files or none named."""
  if not rasters.is_raster(path):
    return None
  with rasters.open_raster(path) as reader:
    return reader.info.wavelengths
