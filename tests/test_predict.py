"""Predicting with a trained run (hsi_jax/predict.py, behind launch/predict.py): the run's own map
reproduced from its bundle, whole and in tiles that cut through the scene; the same map from the
Indian Pines cube as .mat, GeoTIFF and ENVI; map.tif on the input's grid; memory bounded by the
tile; a missing bundle made from the checkpoint."""

import json
import shutil

import jax
import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS

from hsi_jax import bundle as bundle_lib, config_util, errors, families, inference, predict, run
from hsi_jax.data import io, rasters, split_sources

from conftest import REPO

IP_MAT = io.BUNDLED_DIR / "Indian_pines_corrected.mat"
TRANSFORM = (20.0, 0.0, 630000.0, 0.0, -20.0, 4500000.0)  # 20 m pixels, UTM zone 16N
RUNS = {  # reduced runs (runlocal, shortened): what is tested is the map's path, not accuracy
    "da_imrn": ("configs/ip.py:runlocal", {"model.width": 0.125, "train.epochs": 1}),
    "ssan": ("configs/ip.py:runlocal,model=ssan", {"train.steps": 100, "train.eval_every": 100}),
    "svm": ("configs/ip.py:runlocal,model=svm", {}),
}


class _Trained(dict):
  """trained[model]: the work directory of its finished reduced run, trained when first asked."""

  def __init__(self, tmp_path_factory):
    super().__init__()
    self._factory = tmp_path_factory

  def __missing__(self, model):
    config_path, overrides = RUNS[model]
    config = config_util.load_config(str(REPO / config_path))
    for path, value in overrides.items():
      section, leaf = path.split(".")
      config[section][leaf] = value
    self[model] = self._factory.mktemp(model)
    run.run(config, self[model])
    return self[model]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  return _Trained(tmp_path_factory)


@pytest.mark.xdist_group("predict_trained")  # the module-scoped `trained`: built once
@pytest.mark.slow
@pytest.mark.parametrize("model", list(RUNS))
def test_predict_reproduces_the_runs_map_whole_and_tiled(trained, model, tmp_path):
  workdir = trained[model]
  expected = np.load(workdir / "map.npy")
  for tile in (256, 40):  # one tile; tiles of 40 cut through the scene (145 = 3 x 40 + 25)
    out = tmp_path / f"tile{tile}"
    summary = predict.predict(workdir, IP_MAT, out, tile=tile, probabilities=model != "svm")
    np.testing.assert_array_equal(np.load(out / "map.npy"), expected)
    assert summary["tile"] >= tile and summary["no_data_pixels"] == 0
    assert sorted(summary["files"]) == sorted(
        ["map.npy", "map.png", "predict.json"] + (["probabilities.npy"] if model != "svm"
                                                  else []))
    assert not summary["warnings"] and not list(out.glob(".*"))
  if model != "svm":
    scores = np.load(out / "probabilities.npy")
    assert scores.shape == (145, 145, 16)
    np.testing.assert_allclose(scores.sum(-1), 1, rtol=1e-5)
    np.testing.assert_array_equal(np.argmax(scores, -1) + 1, expected)


@pytest.mark.xdist_group("predict_trained")  # the module-scoped `trained`: built once
@pytest.mark.slow
def test_geotiff_and_envi_cubes_predict_the_mat_map_on_their_grid(trained, tmp_path):
  """IP written as a GeoTIFF and as ENVI (with a CRS and transform) predicts the .mat's map;
  map.tif carries the cube's CRS and transform, the ground truth's ids and map.png's colours."""
  workdir = trained["da_imrn"]
  cube = io.load_scene("ip").cube
  expected = np.load(workdir / "map.npy")
  paths = {"GTiff": tmp_path / "ip.tif", "ENVI": tmp_path / "ip.bsq"}
  for driver, path in paths.items():
    rasters.write_cube(path, cube.astype(np.int16), driver=driver, crs="EPSG:32616",
                       transform=TRANSFORM)
  for driver, path in paths.items():
    out = tmp_path / driver
    summary = predict.predict(workdir, path, out, tile=64)
    np.testing.assert_array_equal(np.load(out / "map.npy"), expected)
    assert summary["georeferenced"] and "map.tif" in summary["files"]
    with rasterio.open(out / "map.tif") as tif:
      assert tif.crs == CRS.from_epsg(32616) and tuple(tif.transform)[:6] == TRANSFORM
      assert tif.dtypes[0] == "uint8" and tif.nodata == 0
      np.testing.assert_array_equal(tif.read(1), expected)  # IP's ids in its file are 1..16
      colours = predict.class_colours(16)
      assert tif.colormap(1)[5][:3] == tuple(int(round(255 * c)) for c in colours[5])


def test_a_scene_larger_than_a_tile_is_read_a_tile_at_a_time():
  """The reader is never asked for more than a tile and its halo, and the tiled map equals the
  map of one tile holding the whole scene (a tiny network's random initial state suffices)."""
  config = config_util.load_config(str(REPO / "configs/ip.py:runlocal"))
  config.model.width = 0.125
  scene = io.load_scene("ip")
  split = split_sources.split_from_config(config, labels=scene)[0]
  family = families.family_of("da_imrn")
  mesh = family.make_mesh(config, 1)
  program = family.make_program(config, scene, [split], mesh)
  states = program.init(jax.random.split(jax.random.key(0), 1))
  bundle = bundle_lib.Bundle(dict(num_bands=200, class_ids=list(range(1, 17))),
                             **program.seed_bundle(states, 0))
  predictor = family.make_tile_predictor(config, 16, mesh)

  class Watched(rasters.ArrayReader):
    largest = 0

    def read(self, rows, cols):
      Watched.largest = max(Watched.largest, (rows[1] - rows[0]) * (cols[1] - cols[0]))
      return super().read(rows, cols)

  reader = Watched(scene.cube)
  tiled = inference.predict_map(reader, predictor, bundle, tile=32)
  assert Watched.largest <= (32 + 2 * 4) ** 2 < 145 * 145
  np.testing.assert_array_equal(tiled, inference.predict_map(rasters.ArrayReader(scene.cube),
                                                             predictor, bundle, tile=256))


@pytest.mark.xdist_group("predict_trained")  # the module-scoped `trained`: built once
def test_nodata_pixels_are_left_unclassified(trained, tmp_path):
  """A flight line's nodata margin (the file's nodata value) and NaN / all-zero pixels: class 0,
  the others classified."""
  cube = io.load_scene("ip").cube.copy()
  cube[:, :10] = -9999  # a margin
  cube[50, 50] = 0
  cube[60, 60, 3] = np.nan
  path = tmp_path / "margin.tif"
  rasters.write_cube(path, cube, crs="EPSG:32616", transform=TRANSFORM, nodata=-9999)
  summary = predict.predict(trained["svm"], path, tmp_path / "out")
  classes = np.load(tmp_path / "out" / "map.npy")
  assert np.all(classes[:, :10] == 0) and classes[50, 50] == 0 and classes[60, 60] == 0
  assert summary["no_data_pixels"] == 145 * 10 + 2 and np.all(classes[:, 10:][classes[:, 10:]
                                                                              != 0] > 0)


@pytest.mark.xdist_group("predict_trained")  # the module-scoped `trained`: built once
def test_values_far_outside_the_training_range_are_warned_about(trained, tmp_path):
  path = tmp_path / "reflectance.npz"
  np.savez(path, cube=io.load_scene("ip").cube / 1e4)  # reflectance, not digital numbers
  summary = predict.predict(trained["svm"], path, tmp_path / "out")
  assert any("is the cube scaled as the training scene was?" in w for w in summary["warnings"])


@pytest.mark.xdist_group("predict_trained")  # the module-scoped `trained`: built once
@pytest.mark.slow
def test_a_run_without_bundle_gets_the_command_and_the_command_makes_it(trained, tmp_path):
  """A run from before bundles (and before model.initializer: config_util.ADDED_LEAVES) gets the
  export command; the bundle it makes predicts the run's map, and so does a bundle from before
  the leaf."""
  workdir = tmp_path / "old_run"
  shutil.copytree(trained["da_imrn"], workdir)
  shutil.rmtree(workdir / "bundle")
  _drop_initializer(workdir / "config.json", lambda saved: saved)
  with pytest.raises(bundle_lib.BundleError,
                     match=f"python launch/export_bundle.py --workdir={workdir}"):
    predict.predict(workdir, IP_MAT, tmp_path / "out")
  assert not (tmp_path / "out").exists()
  run.export_bundles(workdir)
  predict.predict(workdir, IP_MAT, tmp_path / "out")
  np.testing.assert_array_equal(np.load(tmp_path / "out" / "map.npy"),
                                np.load(workdir / "map.npy"))
  meta = json.loads((workdir / "bundle" / "bundle.json").read_text())
  assert meta == json.loads((trained["da_imrn"] / "bundle" / "bundle.json").read_text())
  _drop_initializer(workdir / "bundle" / "bundle.json", lambda meta: meta["config"])
  predict.predict(workdir, IP_MAT, tmp_path / "out_old_bundle")
  np.testing.assert_array_equal(np.load(tmp_path / "out_old_bundle" / "map.npy"),
                                np.load(workdir / "map.npy"))


def _drop_initializer(path, config_of):
  """Removes model.initializer from the config in the JSON file `path` (config_of(its object))."""
  saved = json.loads(path.read_text())
  del config_of(saved)["model"]["initializer"]
  path.write_text(json.dumps(saved))


@pytest.mark.xdist_group("predict_trained")  # the module-scoped `trained`: built once
@pytest.mark.slow
def test_a_cube_smaller_than_the_models_window_is_refused_before_writing(trained, tmp_path):
  path = tmp_path / "strip.npz"
  np.savez(path, cube=io.load_scene("ip").cube[:3, :20])  # 3 rows: less than DA-IMRN's 4 x 4
  with pytest.raises(errors.UserError, match="is 3x20 pixels, smaller than the model's 4x4 "
                                             "window"):
    predict.predict(trained["da_imrn"], path, tmp_path / "out")
  assert not (tmp_path / "out").exists()
