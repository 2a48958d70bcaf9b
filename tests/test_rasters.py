"""GeoTIFF / ENVI cubes read a window at a time, class maps written back on the input's grid
(hsi_jax/data/rasters.py), on the real Indian Pines cube."""

import os

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS

from hsi_jax.data import io, rasters

# A module-scoped fixture builds its inputs once: under pytest-xdist (README) one worker runs them all.
pytestmark = pytest.mark.xdist_group("rasters")

CRS_32616 = "EPSG:32616"
TRANSFORM = (20.0, 0.0, 500000.0, 0.0, -20.0, 4500000.0)  # 20 m pixels, north up
# Windows that cut through the 145 x 145 scene (and the 256-pixel tiles / row blocks of its files).
WINDOWS = [((0, 145), (0, 145)), ((0, 50), (30, 145)), ((100, 145), (0, 17)),
           ((37, 38), (144, 145)), ((7, 133), (61, 62))]


@pytest.fixture(scope="module")
def ip():
  """(cube (145, 145, 200) int16, raw ground-truth ids (145, 145))."""
  scene = io.load_scene("ip")
  assert np.array_equal(scene.cube, np.round(scene.cube))  # stored as whole numbers
  raw = np.where(scene.gt > 0, np.asarray((0,) + scene.class_ids)[scene.gt], 0)
  return scene.cube.astype(np.int16), raw


@pytest.fixture(scope="module")
def ip_tif(ip, tmp_path_factory):
  path = tmp_path_factory.mktemp("tif") / "ip.tif"
  rasters.write_cube(path, ip[0], crs=CRS_32616, transform=TRANSFORM, block_rows=40)
  return path


def _same_crs(wkt, expected=CRS_32616):
  return CRS.from_user_input(wkt) == CRS.from_user_input(expected)


def _check_windows(reader, cube):
  for rows, cols in WINDOWS:
    block = reader.read(rows, cols)
    assert block.dtype == np.float32 and block.flags.c_contiguous
    np.testing.assert_array_equal(block, cube[slice(*rows), slice(*cols)])


def test_is_raster(tmp_path):
  for name in ("a.tif", "a.TIFF", "a.hdr", "a.img", "a.bil", "a.bsq", "a.bip", "a.dat"):
    assert rasters.is_raster(tmp_path / name), name
  for name in ("a.mat", "a.npz", "a"):
    assert not rasters.is_raster(tmp_path / name), name
  (tmp_path / "a.hdr").write_text("ENVI\n")
  assert rasters.is_raster(tmp_path / "a")  # an extension-less ENVI data file beside its .hdr


@pytest.mark.parametrize("interleave", ["pixel", "band"])
def test_geotiff_reads_back_in_windows(ip, tmp_path, interleave):
  cube = ip[0]
  path = tmp_path / "ip.tif"
  rasters.write_cube(path, cube, crs=CRS_32616, transform=TRANSFORM, interleave=interleave,
                     wavelengths=np.linspace(400, 2500, 200))
  assert sorted(os.listdir(tmp_path)) == ["ip.tif"]  # no temporary or sidecar file left
  assert rasters.raster_shape(path) == (145, 145, 200)
  with io.open_cube(path) as reader:
    info = reader.info
    assert (info.shape, info.dtype, info.nodata) == ((145, 145, 200), "int16", None)
    assert _same_crs(info.crs) and info.transform == TRANSFORM
    np.testing.assert_allclose(info.wavelengths, np.linspace(400, 2500, 200))
    _check_windows(reader, cube)


def test_cube_written_in_row_blocks(ip, ip_tif):
  with io.open_cube(ip_tif) as reader:
    np.testing.assert_array_equal(reader.read((0, 145), (0, 145)), ip[0])


def test_cube_written_from_a_block_function(ip, tmp_path):
  calls = []

  def make_block(r0, r1):
    calls.append((r0, r1))
    return ip[0][r0:r1]

  rasters.write_cube_blocks(tmp_path / "ip.tif", (145, 145, 200), np.int16, make_block,
                            block_rows=60)
  assert calls == [(0, 60), (60, 120), (120, 145)]
  with io.open_cube(tmp_path / "ip.tif") as reader:
    assert reader.info.crs is None and reader.info.transform is None  # not georeferenced
    _check_windows(reader, ip[0])


@pytest.mark.parametrize("suffix", [".bsq", ".bil", ".bip", ""])
def test_envi_reads_back_by_header_or_data_file(ip, tmp_path, suffix):
  cube = ip[0].astype(np.uint16)
  wavelengths = np.round(np.linspace(400.5, 2499.5, 200), 2)
  bad = np.ones(200, int)
  bad[[103, 104, 150]] = 0
  data = tmp_path / f"ip{suffix}"
  rasters.write_cube(data, cube, driver="ENVI", crs=CRS_32616, transform=TRANSFORM,
                     nodata=0, wavelengths=wavelengths, bad_bands=bad, block_rows=50)
  assert sorted(os.listdir(tmp_path)) == sorted([data.name, "ip.hdr"])
  header = (tmp_path / "ip.hdr").read_text()
  assert f"interleave = {suffix[1:] or 'bsq'}" in header and "wavelength = {400.5," in header
  for path in (data, tmp_path / "ip.hdr"):
    assert rasters.raster_shape(path) == (145, 145, 200)
    with io.open_cube(path) as reader:
      info = reader.info
      assert (info.path, info.shape, info.dtype, info.nodata) == (str(path), (145, 145, 200),
                                                                  "uint16", 0)
      assert _same_crs(info.crs) and info.transform == TRANSFORM
      assert info.wavelengths == tuple(wavelengths) and info.bad_bands == tuple(bad)
      _check_windows(reader, cube)


def test_array_reader_and_npz(ip, tmp_path):
  cube = ip[0]
  with rasters.ArrayReader(cube) as reader:
    assert reader.info == rasters.CubeInfo("<memory>", (145, 145, 200), "int16")
    _check_windows(reader, cube)
  np.savez(tmp_path / "ip.npz", cube=cube, gt=ip[1])
  with io.open_cube(tmp_path / "ip.npz", "cube") as reader:
    assert (reader.info.crs, reader.info.transform, reader.info.wavelengths) == (None,) * 3
    _check_windows(reader, cube)
  np.testing.assert_array_equal(io.read_mat_array(tmp_path / "ip.npz", "gt"), ip[1])
  with pytest.raises(io.DataError, match=r"a cube needs \(H, W, bands\)"):
    rasters.ArrayReader(cube[..., 0])


@pytest.mark.parametrize("rows, cols", [((0, 146), (0, 10)), ((-1, 5), (0, 10)),
                                        ((5, 5), (0, 10)), ((0, 10), (140, 150))])
def test_window_outside_the_scene(ip, ip_tif, rows, cols):
  for reader in (rasters.ArrayReader(ip[0]), io.open_cube(ip_tif)):
    with reader, pytest.raises(ValueError, match="empty or outside the 145x145 scene"):
      reader.read(rows, cols)


def test_nodata_mask():
  block = np.ones((2, 3, 4), np.float32)
  block[0, 0, 2] = -9999  # one band at the nodata value
  block[0, 1] = 0  # an all-zero spectrum
  block[1, 2, 3] = np.nan
  block[1, 0, 0] = 0  # one zero band is data
  expected = np.array([[True, True, False], [False, False, True]])
  np.testing.assert_array_equal(rasters.nodata_mask(block, -9999.0), expected)
  expected[0, 0] = False
  np.testing.assert_array_equal(rasters.nodata_mask(block, None), expected)
  np.testing.assert_array_equal(rasters.nodata_mask(block, np.nan), expected)
  block[1, 1, 1] = np.float32(0.1)  # a float32 file's nodata, given back as float64
  assert rasters.nodata_mask(block, 0.1)[1, 1]
  assert rasters.nodata_mask(np.full((1, 1, 3), 7, np.int16), 7)[0, 0]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_class_map_round_trip_on_the_cubes_grid(ip, ip_tif, tmp_path):
  raw = ip[1]
  colours = np.random.default_rng(0).random((17, 3))
  with io.open_cube(ip_tif) as reader:
    info = reader.info
  path = tmp_path / "map.tif"
  rasters.write_class_map(path, raw, info, colours)
  assert sorted(os.listdir(tmp_path)) == ["map.tif"]
  with rasterio.open(path) as src:
    assert (src.count, src.dtypes[0], src.nodata) == (1, "uint8", 0)
    assert src.profile["tiled"] and src.compression.name.lower() == "deflate"
    assert _same_crs(src.crs.to_wkt(), info.crs) and tuple(src.transform)[:6] == TRANSFORM
    colormap = src.colormap(1)
    assert colormap[3] == tuple(int(v) for v in np.round(colours[3] * 255)) + (255,)
  np.testing.assert_array_equal(rasters.read_class_map(path), raw)
  assert rasters.raster_shape(path) == (145, 145)
  assert rasters.colour_table(colours)[16] == colormap[16]
  # Beyond 255 classes: uint16; no grid without an info.
  rasters.write_class_map(path, raw * 100, None, None)
  with rasterio.open(path) as src:
    assert src.dtypes[0] == "uint16" and src.crs is None
  np.testing.assert_array_equal(rasters.read_class_map(path), raw * 100)


def test_class_map_writer_windows_equal_the_whole(ip, ip_tif, tmp_path):
  raw = ip[1]
  with io.open_cube(ip_tif) as reader:
    info = reader.info
  with rasters.ClassMapWriter(tmp_path / "map.tif", raw.shape, 16, info, None) as writer:
    for r0 in range(0, 145, 40):
      for c0 in range(0, 145, 60):
        writer.write((r0, min(r0 + 40, 145)), (c0, min(c0 + 60, 145)),
                     raw[r0:r0 + 40, c0:c0 + 60])
    assert not (tmp_path / "map.tif").exists()  # only renamed onto its name at the end
  np.testing.assert_array_equal(rasters.read_class_map(tmp_path / "map.tif"), raw)
  with pytest.raises(RuntimeError, match="stop"):
    with rasters.ClassMapWriter(tmp_path / "other.tif", raw.shape, 16, info, None) as writer:
      writer.write((0, 10), (0, 10), raw[:10, :10])
      raise RuntimeError("stop")
  assert sorted(os.listdir(tmp_path)) == ["map.tif"]  # the temporary file is gone
  writer = rasters.ClassMapWriter(tmp_path / "map2.tif", raw.shape, 16, info, None)
  with pytest.raises(ValueError, match="class ids must lie in 0..16"):
    writer.write((0, 1), (0, 2), np.array([[0, 17]]))
  with pytest.raises(ValueError, match="does not fit"):
    writer.write((140, 150), (0, 2), np.zeros((10, 2)))
  writer.close()


def test_class_map_of_the_ground_truth_as_geotiff(ip, tmp_path):
  raw = ip[1]
  assert sorted(np.unique(raw[raw > 0])) == list(range(1, 17))
  path = tmp_path / "gt.tif"
  rasters.write_cube(path, raw[..., None].astype(np.uint8))
  gt = rasters.read_class_map(path)
  assert gt.dtype == np.uint8
  np.testing.assert_array_equal(io.class_map(gt, str(path)), raw)


def test_bad_files(ip, ip_tif, tmp_path):
  with pytest.raises(FileNotFoundError, match="No file at .*nothing.tif"):
    io.open_cube(tmp_path / "nothing.tif")
  (tmp_path / "empty.tif").touch()
  with pytest.raises(io.DataError, match=r"empty.tif is empty \(0 bytes\)"):
    io.open_cube(tmp_path / "empty.tif")
  (tmp_path / "garbage.tif").write_bytes(np.random.default_rng(0).bytes(4000))
  with pytest.raises(io.DataError, match=r"garbage.tif is not a readable GeoTIFF/ENVI file \("
                     ".*not recognized.*truncated or of another format"):
    io.open_cube(tmp_path / "garbage.tif")
  rasters.write_cube(tmp_path / "cube.bsq", ip[0][:10, :10, :4], driver="ENVI")
  (tmp_path / "cube.hdr").write_text("ENVI\nsamples = ten\nlines = }\ninterleave = bsq\n")
  for name in ("cube.hdr", "cube.bsq"):
    with pytest.raises(io.DataError, match=f"{name} is not a readable GeoTIFF/ENVI file .*"
                       "an ENVI cube needs a valid .hdr"):
      io.open_cube(tmp_path / name)
  (tmp_path / "lonely.hdr").write_text("ENVI\n")
  with pytest.raises(FileNotFoundError, match="lonely.hdr: no ENVI data file beside it"):
    io.open_cube(tmp_path / "lonely.hdr")
  rasters.write_cube(tmp_path / "short.img", ip[0][:10, :10, :4], driver="ENVI")
  with open(tmp_path / "short.img", "r+b") as file:
    file.truncate(500)
  with pytest.raises(io.DataError, match="holds 500 bytes, its .hdr describes 800; it is trunc"):
    io.open_cube(tmp_path / "short.hdr")
  rasters.write_cube(tmp_path / "band.tif", ip[0][..., :1])
  with pytest.raises(io.DataError, match=r"band.tif has a single band: a cube needs \(H, W, "):
    io.open_cube(tmp_path / "band.tif")
  with pytest.raises(io.DataError, match="ip.tif has 200 bands: a class map is a single band"):
    rasters.read_class_map(ip_tif)
