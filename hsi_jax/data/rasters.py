"""Hyperspectral cubes as GeoTIFF and ENVI files (through rasterio / GDAL), read a window at a time.

A scene larger than memory is never loaded whole: `open_cube` returns a reader whose `read(rows,
cols)` gives one (h, w, B) float32 window, so memory is bounded by the window. GeoTIFF and ENVI
(`.hdr` beside a `.img` / `.bil` / `.bsq` / `.bip` / `.dat` / extension-less data file; either file
may be named) are read through rasterio; io.open_cube puts a .mat / .npz cube, loaded whole, behind
the same interface (`ArrayReader`). `CubeInfo` keeps what a result needs to be put back on
the input's grid (CRS, affine transform) and what the header says of the bands (wavelengths, bad
bands); class maps are written as tiled, compressed GeoTIFFs on that grid, whole
(`write_class_map`) or a window at a time (`ClassMapWriter`), under a temporary name first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import warnings
from typing import Callable, Optional

import numpy as np
import rasterio
import rasterio.errors
from rasterio.transform import Affine
from rasterio.windows import Window

from hsi_jax import errors, fileutil

RASTER_SUFFIXES = (".tif", ".tiff", ".hdr", ".img", ".bil", ".bsq", ".bip", ".dat")
_ENVI_DATA = ("", ".img", ".bil", ".bsq", ".bip", ".dat", ".raw")  # tried beside a .hdr
_TILE = 256
# GDAL's block cache while a cube is read by window: enough for the blocks that a row of tiles and
# its halo share, far below GDAL's default (5 % of the machine's memory: 1.2 GB of 24 GB, which
# more than doubled predict's peak memory on a 1.2 GB GeoTIFF; results/bench.md).
READ_CACHE_BYTES = 256 * 2**20
_QUIET = dict(action="ignore", category=rasterio.errors.NotGeoreferencedWarning)


def is_raster(path) -> bool:
  """True for a GeoTIFF or an ENVI file (by suffix; an ENVI data file given by its .hdr or by its
  data file, an extension-less one when its .hdr is beside it)."""
  path = pathlib.Path(path)
  return (path.suffix.lower() in RASTER_SUFFIXES
          or (not path.suffix and path.with_name(path.name + ".hdr").is_file()))


@dataclasses.dataclass
class CubeInfo:
  """What a cube's header says. shape (H, W, B); transform: the affine (a, b, c, d, e, f) in
  rasterio's order; crs (WKT) and transform are None when the file is not georeferenced."""
  path: str
  shape: tuple[int, int, int]
  dtype: str  # numpy name of the stored values
  nodata: Optional[float] = None
  crs: Optional[str] = None
  transform: Optional[tuple] = None
  wavelengths: Optional[tuple[float, ...]] = None  # one per band
  bad_bands: Optional[tuple[int, ...]] = None  # ENVI bbl: 1 good, 0 bad


class CubeReader:
  """Windows of a cube: read(rows, cols) -> (r1 - r0, c1 - c0, B) float32, values as stored (no
  scaling; nodata left as is, see nodata_mask). A context manager."""
  info: CubeInfo

  def read(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    raise NotImplementedError

  def close(self) -> None:
    pass

  def __enter__(self):
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def _window(self, rows, cols) -> tuple[int, int, int, int]:
    """rows [r0, r1) x cols [c0, c1), checked to be non-empty and inside the scene."""
    (r0, r1), (c0, c1) = rows, cols
    height, width = self.info.shape[:2]
    if not (0 <= r0 < r1 <= height and 0 <= c0 < c1 <= width):
      raise ValueError(f"window rows [{r0}, {r1}) x cols [{c0}, {c1}) is empty or outside the "
                       f"{height}x{width} scene {self.info.path}.")
    return int(r0), int(r1), int(c0), int(c1)


class ArrayReader(CubeReader):
  """A CubeReader over an (H, W, B) in-memory array of any numeric type."""

  def __init__(self, array: np.ndarray, path: str = "<memory>"):
    array = np.asarray(array)
    if array.ndim != 3 or array.dtype.kind not in "biuf":
      raise errors.DataError(f"{path}: a cube needs (H, W, bands) numbers, got shape {array.shape} of "
                         f"{array.dtype}.")
    self.array = array
    self.info = CubeInfo(str(path), tuple(int(n) for n in array.shape), array.dtype.name)

  def read(self, rows, cols) -> np.ndarray:
    r0, r1, c0, c1 = self._window(rows, cols)
    return self.array[r0:r1, c0:c1].astype(np.float32, order="C")  # a copy


class _RasterReader(CubeReader):
  """A CubeReader over an open rasterio dataset: only the window is read (bands in file order)."""

  def __init__(self, path: pathlib.Path, dataset):
    self._dataset = dataset
    self.info = _info(path, dataset)

  def read(self, rows, cols) -> np.ndarray:
    r0, r1, c0, c1 = self._window(rows, cols)
    try:
      with rasterio.Env(GDAL_CACHEMAX=READ_CACHE_BYTES):
        block = self._dataset.read(window=Window(c0, r0, c1 - c0, r1 - r0),
                                   out_dtype=np.float32)
    except rasterio.errors.RasterioError as error:
      raise _unreadable(pathlib.Path(self.info.path), error) from None
    return np.ascontiguousarray(block.transpose(1, 2, 0))

  def close(self) -> None:
    self._dataset.close()


def _unreadable(path: pathlib.Path, error: Exception) -> errors.DataError:
  fix = ("an ENVI cube needs a valid .hdr (samples, lines, bands, data type, interleave) beside "
         "its data file" if path.suffix.lower() not in (".tif", ".tiff") else
         "is it truncated or of another format? Write or download it again")
  return errors.DataError(f"{path} is not a readable GeoTIFF/ENVI file "
                      f"({' '.join(str(error).split())[:200]}); {fix}.")


def _open(path) -> tuple[pathlib.Path, rasterio.io.DatasetReader]:
  """(path, open dataset); a .hdr opens its data file. Errors name `path`."""
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise FileNotFoundError(f"No file at {path}.")
  if path.stat().st_size == 0:
    raise errors.DataError(f"{path} is empty (0 bytes); write or download it again.")
  source = _envi_data_file(path) if path.suffix.lower() == ".hdr" else path
  try:
    with warnings.catch_warnings():
      warnings.filterwarnings(**_QUIET)
      dataset = rasterio.open(source)
  except rasterio.errors.RasterioError as error:
    raise _unreadable(path, error) from None
  if dataset.driver == "ENVI":  # GDAL reads a short ENVI data file as zeros: say it is short
    offset = int(float(dataset.tags(ns="ENVI").get("header_offset", 0) or 0))
    need = offset + dataset.width * dataset.height * dataset.count * np.dtype(
        dataset.dtypes[0]).itemsize
    if os.path.getsize(source) < need:
      dataset.close()
      raise errors.DataError(f"{path}: the data file {source.name} holds {os.path.getsize(source)} "
                         f"bytes, its .hdr describes {need}; it is truncated, write or download "
                         "it again.")
  return path, dataset


def _envi_data_file(header: pathlib.Path) -> pathlib.Path:
  """The data file of an ENVI header: the same name less `.hdr` (a.bil.hdr, a.hdr -> a), or with
  one of the data extensions (either case)."""
  stem = header.with_suffix("")
  for ext in _ENVI_DATA + tuple(ext.upper() for ext in _ENVI_DATA[1:]):
    if stem.with_name(stem.name + ext).is_file():
      return stem.with_name(stem.name + ext)
  raise FileNotFoundError(f"{header}: no ENVI data file beside it (looked for {stem.name} with no "
                          f"extension or {', '.join(_ENVI_DATA[1:])}).")


def _numbers(text: Optional[str]) -> Optional[list[float]]:
  """The numbers of an ENVI list '{1, 2, 3}' (or a single number); None when absent or garbled."""
  try:
    return [float(v) for v in text.strip().strip("{}").split(",")] if text else None
  except ValueError:
    return None


def _info(path: pathlib.Path, dataset) -> CubeInfo:
  georeferenced = dataset.crs is not None or not dataset.transform.is_identity
  envi = dataset.tags(ns="ENVI")
  per_band = [dataset.tags(b).get("wavelength") for b in dataset.indexes]
  wavelengths = (_numbers(",".join(per_band)) if all(per_band) else
                 _numbers(envi.get("wavelength")))
  bad = _numbers(envi.get("bbl") or dataset.tags().get("bbl"))
  bands = dataset.count
  return CubeInfo(
      path=str(path), shape=(dataset.height, dataset.width, bands), dtype=dataset.dtypes[0],
      nodata=dataset.nodata, crs=dataset.crs.to_wkt() if dataset.crs else None,
      transform=tuple(float(v) for v in dataset.transform[:6]) if georeferenced else None,
      wavelengths=tuple(wavelengths) if wavelengths and len(wavelengths) == bands else None,
      bad_bands=tuple(int(v) for v in bad) if bad and len(bad) == bands else None)


def open_raster(path) -> CubeReader:
  """A reader of the GeoTIFF / ENVI cube at `path` through rasterio windows (the file stays open
  until close()). Missing file: FileNotFoundError; unreadable file or a one-band raster: DataError
  naming the file. (io.open_cube takes every format.)"""
  path, dataset = _open(path)
  if dataset.count == 1:
    dataset.close()
    raise errors.DataError(f"{path} has a single band: a cube needs (H, W, bands) with one band "
                           "per wavelength (is it a class map?).")
  return _RasterReader(path, dataset)


def read_raster(path) -> np.ndarray:
  """The whole raster as stored: (H, W) for one band, else (H, W, B)."""
  path, dataset = _open(path)
  with dataset:
    try:
      values = dataset.read()
    except rasterio.errors.RasterioError as error:
      raise _unreadable(path, error) from None
  return values[0] if len(values) == 1 else np.moveaxis(values, 0, -1)


def nodata_mask(block: np.ndarray, nodata: Optional[float]) -> np.ndarray:
  """(h, w) bool of an (h, w, B) block: True where any band holds `nodata` or NaN, or where the
  spectrum is all zeros."""
  block = np.asarray(block)
  mask = (block == 0).all(-1)
  if block.dtype.kind == "f":
    mask |= np.isnan(block).any(-1)
    if nodata is not None and not np.isnan(nodata):
      nodata = block.dtype.type(nodata)  # a float32 file's nodata, read back as float64
  if nodata is not None and not np.isnan(nodata):
    mask |= (block == nodata).any(-1)
  return mask


def raster_shape(path) -> tuple[int, ...]:
  """(H, W, B), or (H, W) for one band, of a GeoTIFF / ENVI file from its header (no pixel read)."""
  _, dataset = _open(path)
  with dataset:
    return (dataset.height, dataset.width) + ((dataset.count,) if dataset.count > 1 else ())


def read_class_map(path) -> np.ndarray:
  """(H, W) class ids as stored, from a single-band GeoTIFF / ENVI file (io.class_map checks them
  later); a multi-band raster is a DataError."""
  path, dataset = _open(path)
  with dataset:
    if dataset.count != 1:
      raise errors.DataError(f"{path} has {dataset.count} bands: a class map is a single band of "
                             "class ids (is it the cube?).")
    try:
      return dataset.read(1)
    except rasterio.errors.RasterioError as error:
      raise _unreadable(path, error) from None


def colour_table(colours: np.ndarray) -> dict[int, tuple[int, int, int, int]]:
  """(C + 1, 3) RGB in [0, 1] (row 0 = class 0) -> rasterio colormap {id: (r, g, b, 255)}."""
  colours = np.asarray(colours, dtype=np.float64)
  if colours.ndim != 2 or colours.shape[1] != 3:
    raise ValueError(f"colours must be (classes + 1, 3) RGB in [0, 1], got shape {colours.shape}.")
  rgb = np.clip(np.round(colours * 255), 0, 255).astype(int)
  return {i: (int(r), int(g), int(b), 255) for i, (r, g, b) in enumerate(rgb)}


def _grid(info: Optional[CubeInfo]) -> dict:
  """rasterio profile entries placing a file on `info`'s grid (none when not georeferenced)."""
  grid = {}
  if info is not None and info.transform is not None:
    grid["transform"] = Affine(*info.transform)
  if info is not None and info.crs:
    grid["crs"] = info.crs
  return grid


class ClassMapWriter:
  """A single-band GeoTIFF of class ids written a window at a time: uint8 (uint16 beyond 255
  classes), nodata 0, DEFLATE, tiled, on info's grid, with a colour table from `colours` (C + 1, 3).
  It is written under a temporary name beside `path`, renamed onto `path` by close() (or leaving
  a `with` block normally) and removed when the block raises."""

  def __init__(self, path, shape: tuple[int, int], num_classes: int,
               info: Optional[CubeInfo] = None, colours: Optional[np.ndarray] = None):
    if not 0 <= num_classes <= 65535:
      raise ValueError(f"a class map holds ids 0..65535, got {num_classes} classes.")
    self.shape = (int(shape[0]), int(shape[1]))
    self.num_classes = int(num_classes)
    self._dtype = np.uint8 if num_classes <= 255 else np.uint16
    self._target = fileutil.atomic_path(path)
    tmp = self._target.__enter__()
    try:
      with warnings.catch_warnings():
        warnings.filterwarnings(**_QUIET)
        self._dataset = rasterio.open(
            tmp, "w", driver="GTiff", height=self.shape[0], width=self.shape[1], count=1,
            dtype=self._dtype, nodata=0, compress="deflate", tiled=True, blockxsize=_TILE,
            blockysize=_TILE, **_grid(info))
      if colours is not None:
        top = np.iinfo(self._dtype).max
        self._dataset.write_colormap(1, {k: v for k, v in colour_table(colours).items()
                                         if k <= top})
    except BaseException as error:
      if getattr(self, "_dataset", None) is not None:
        self._dataset.close()
      self._target.__exit__(type(error), error, error.__traceback__)  # removes the file
      raise

  def write(self, rows: tuple[int, int], cols: tuple[int, int], block: np.ndarray) -> None:
    """Class ids (r1 - r0, c1 - c0) into rows [r0, r1) x cols [c0, c1)."""
    (r0, r1), (c0, c1) = rows, cols
    block = np.asarray(block)
    if (block.shape != (r1 - r0, c1 - c0) or min(r0, c0) < 0 or r1 > self.shape[0]
        or c1 > self.shape[1]):
      raise ValueError(f"block of shape {block.shape} does not fit rows [{r0}, {r1}) x cols "
                       f"[{c0}, {c1}) of the {self.shape[0]}x{self.shape[1]} map.")
    if block.size and (block.min() < 0 or block.max() > self.num_classes):
      raise ValueError(f"class ids must lie in 0..{self.num_classes}, the block holds "
                       f"{block.min()}..{block.max()}.")
    self._dataset.write(block.astype(self._dtype), 1, window=Window(c0, r0, c1 - c0, r1 - r0))

  def close(self) -> None:
    self.__exit__(None, None, None)

  def __enter__(self):
    return self

  def __exit__(self, kind, value, traceback) -> None:
    if self._dataset.closed:
      return
    self._dataset.close()
    self._target.__exit__(kind, value, traceback)  # renames, or removes the file on an error


def write_class_map(path, class_map: np.ndarray, info: Optional[CubeInfo] = None,
                    colours: Optional[np.ndarray] = None) -> None:
  """(H, W) class ids (0 = none) as a GeoTIFF on info's grid (see ClassMapWriter), atomically."""
  class_map = np.asarray(class_map)
  if class_map.ndim != 2:
    raise ValueError(f"a class map is (H, W), got shape {class_map.shape}.")
  with ClassMapWriter(path, class_map.shape, int(class_map.max(initial=0)), info,
                      colours) as writer:
    writer.write((0, class_map.shape[0]), (0, class_map.shape[1]), class_map)


def write_cube_blocks(path, shape: tuple[int, int, int], dtype,
                      make_block: Callable[[int, int], np.ndarray], *, driver: str = "GTiff",
                      interleave: Optional[str] = None, crs: Optional[str] = None,
                      transform: Optional[tuple] = None, nodata=None, wavelengths=None,
                      bad_bands=None, block_rows: int = _TILE) -> None:
  """An (H, W, B) cube of `dtype`, made block by block (make_block(r0, r1) -> (r1 - r0, W, B)), as
  a tiled GeoTIFF (driver "GTiff", interleave "pixel" (default) or "band") or ENVI (driver "ENVI";
  interleave from the suffix .bsq / .bil / .bip, else bsq; the .hdr is written beside it).
  wavelengths / bad_bands (ENVI bbl) go into the header (GeoTIFF: band / dataset metadata)."""
  path = pathlib.Path(path)
  height, width, bands = shape
  profile = dict(driver=driver, height=height, width=width, count=bands,
                 dtype=np.dtype(dtype).name, nodata=nodata, **_grid(CubeInfo(
                     "", shape, "", crs=crs, transform=transform)))
  if driver == "GTiff":
    profile.update(interleave=interleave or "pixel", tiled=True, blockxsize=_TILE,
                   blockysize=_TILE)
  elif driver == "ENVI":
    suffix = path.suffix.lower().lstrip(".")
    profile["interleave"] = interleave or (suffix if suffix in ("bil", "bip") else "bsq")
  else:
    raise ValueError(f"driver must be 'GTiff' or 'ENVI', got {driver!r}.")
  header = path.with_suffix(".hdr")
  with (fileutil.atomic_path(path) as tmp, fileutil.atomic_path(header) if driver == "ENVI"
        else contextlib.nullcontext() as tmp_header):
    try:
      with warnings.catch_warnings(), rasterio.Env(GDAL_PAM_ENABLED="NO"):
        warnings.filterwarnings(**_QUIET)
        with rasterio.open(tmp, "w", **profile) as dataset:
          for r0 in range(0, height, block_rows):
            r1 = min(r0 + block_rows, height)
            block = np.asarray(make_block(r0, r1))
            if block.shape != (r1 - r0, width, bands):
              raise ValueError(f"make_block({r0}, {r1}) gave shape {block.shape}, expected "
                               f"{(r1 - r0, width, bands)}.")
            dataset.write(block.transpose(2, 0, 1).astype(profile["dtype"], copy=False),
                          window=Window(0, r0, width, r1 - r0))
          _write_band_tags(dataset, driver, wavelengths, bad_bands)
      if tmp_header is not None:  # GDAL describes the file by its (temporary) name
        text = tmp.with_suffix(".hdr").read_text().replace(str(tmp), path.name)
        tmp_header.write_text(text)  # renamed onto its place before the data file is
    finally:
      if tmp_header is not None and tmp.with_suffix(".hdr").exists():
        os.remove(tmp.with_suffix(".hdr"))


def _write_band_tags(dataset, driver: str, wavelengths, bad_bands) -> None:
  """ENVI: `wavelength` and `bbl` header lists; GeoTIFF: a `wavelength` tag on each band and a
  `bbl` list on the dataset (where _info reads them back)."""
  bbl = None if bad_bands is None else "{" + ", ".join(str(int(v)) for v in bad_bands) + "}"
  if driver == "ENVI":
    tags = dict(bbl=bbl)
    if wavelengths is not None:
      tags["wavelength"] = "{" + ", ".join(repr(float(v)) for v in wavelengths) + "}"
    dataset.update_tags(ns="ENVI", **{k: v for k, v in tags.items() if v is not None})
    return
  for band, wavelength in zip(dataset.indexes, wavelengths if wavelengths is not None else ()):
    dataset.update_tags(band, wavelength=repr(float(wavelength)))
  if bbl is not None:
    dataset.update_tags(bbl=bbl)


def write_cube(path, cube: np.ndarray, *, driver: str = "GTiff", block_rows: Optional[int] = None,
               **options) -> None:
  """An (H, W, B) array as a GeoTIFF or ENVI file (write_cube_blocks; options: interleave, crs,
  transform, nodata, wavelengths, bad_bands), in blocks of block_rows rows (default: whole)."""
  cube = np.asarray(cube)
  if cube.ndim != 3:
    raise ValueError(f"a cube is (H, W, B), got shape {cube.shape}.")
  write_cube_blocks(path, cube.shape, cube.dtype, lambda r0, r1: cube[r0:r1], driver=driver,
                    block_rows=block_rows or cube.shape[0], **options)
