"""A user's own scene and a user's own split, from a config alone (configs/custom.py, split.file)."""

import hashlib
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io

from conftest import REPO, subprocess_env, write_custom_scene
from hsi_jax import config_util, models, validate
from hsi_jax.data import io, rasters, scenes, split_files, split_sources
from hsi_jax.models import da_imrn

CUSTOM = str(REPO / "configs" / "custom.py")


def _launch(script, *args, timeout=900):
  return subprocess.run([sys.executable, f"launch/{script}", *args], cwd=REPO, capture_output=True,
                        text=True, timeout=timeout, env=subprocess_env(devices=1))


def _painted(windows, shape):
  """(H, W) bool: pixels inside any (row0, col0, row1, col1) window, painted one by one."""
  covered = np.zeros(shape, bool)
  for r0, c0, r1, c1 in windows:
    covered[max(r0, 0):r1, max(c0, 0):c1] = True
  return covered


def test_band_schedule_reaches_three_bands():
  for bands in range(3, 512):
    strides, kernels = da_imrn.band_schedule(bands)
    assert len(strides) == len(kernels) == 6 and min(strides) >= 1 and min(kernels) >= 1, bands
    assert da_imrn.stage_bands(bands, strides, kernels)[-1] == 3, bands
  with pytest.raises(ValueError, match="at least 3 bands"):
    da_imrn.band_schedule(2)


@pytest.mark.parametrize("bands", [4, 10, 150])
def test_da_imrn_runs_with_the_schedule_of_any_band_count(bands):
  """The network itself (a narrow one) on B-band patches: the schedule's stages fit together."""
  strides, kernels = da_imrn.band_schedule(bands)
  model = da_imrn.DAIMRN(num_classes=5, stage_features=((2, 4),) * 6, band_strides=strides,
                         valid_kernels=kernels, attention_hidden=4)
  x = jnp.ones((2, 4, 4, bands))
  variables = model.init(jax.random.key(0), x)
  assert model.apply(variables, x).shape == (2, 4, 4, 5)


@pytest.mark.parametrize("scene", ["ip", "pu", "sv"])
def test_band_schedule_is_the_papers_for_its_scenes(scene):
  config = config_util.load_config(str(REPO / "configs" / f"{scene}.py"))
  bands = scenes.get_scene(scene).num_bands
  assert da_imrn.band_schedule(bands) == (tuple(config.model.band_strides),
                                          tuple(config.model.valid_kernels))


def test_display_bands_are_the_registrys_for_ip_and_pu():
  for scene in ("ip", "pu"):
    assert scenes.display_bands(scenes.get_scene(scene).num_bands) == \
        scenes.get_scene(scene).rgb_bands


def test_every_registered_scene_has_a_config_that_validates():
  """fetch_data.py offers every registry scene; each has configs/<name>.py naming it."""
  for name in scenes.SCENES:
    config = config_util.load_config(str(REPO / "configs" / f"{name}.py"))
    assert config.scene == name
    validate.validate(config)


def test_ksc_config_calibrates_its_split_on_the_registered_ground_truth(tmp_path):
  """KSC (no published partition) leaves its `blocks` ratios to the split: calibrated on the
  ground truth found in data.root under the registry's name and key (a synthetic 512 x 614 map of
  13 classes in small patches here: the real file is not at hand)."""
  rng = np.random.default_rng(0)
  ground_truth = np.zeros((512, 614), np.uint8)
  for _ in range(400):
    row, col = rng.integers(0, 500), rng.integers(0, 600)
    ground_truth[row:row + 3, col:col + 4] = rng.integers(1, 14)
  registry = scenes.get_scene("ksc")
  scipy.io.savemat(tmp_path / registry.gt.filename, {registry.gt.key: ground_truth})
  config = config_util.load_config(str(REPO / "configs" / "ksc.py"))
  config.data.root = str(tmp_path)
  assert config.split.pixel_ratio is None and config.split.accept is None
  split = split_sources.split_from_config(config)[0]
  labelled = int(np.count_nonzero(ground_truth))
  low, high = split.info["calibrated"]["accept"]
  assert low <= 0.11 * labelled <= high
  assert low <= np.count_nonzero(split.train) <= high and low <= np.count_nonzero(split.val) <= high
  assert split.info["params"]["pixel_ratio"] == split.info["calibrated"]["pixel_ratio"]
  assert "custom_scene" not in split.info


def test_custom_config_records_choices_and_the_run_derives_the_rest(tmp_path):
  """Loading configs/custom.py reads no data file: the config holds the paths and options only.
  The scene (size, bands, keys, classes, names, RGB bands) is derived when it is read, the
  `blocks` ratios and accept bounds when the split is made, and split.info records both."""
  missing = config_util.load_config(f"{CUSTOM}:cube={tmp_path}/none.mat,gt={tmp_path}/none2.mat")
  assert missing.data.cube == str(tmp_path / "none.mat")  # loads: nothing is read yet
  scene = write_custom_scene(tmp_path)
  config = config_util.load_config(f"{CUSTOM}:cube={scene['cube']},gt={scene['gt']}")
  assert config.scene == "custom"
  assert set(config.data) == {"root", "cube", "gt", "cube_key", "gt_key", "classes", "standardize"}
  assert config.split.pixel_ratio is None and config.split.val_ratio is None
  assert config.split.accept is None and config.model.band_strides is None
  derived = io.scene_of(config)
  assert derived.shape == (47, 53) and derived.num_bands == 24 and derived.cube.key == "radiance"
  assert derived.class_ids == (3, 7, 20, 41)
  assert derived.class_names == ("class 3", "class 7", "class 20", "class 41")
  assert derived.rgb_bands == scenes.display_bands(24)
  split, labels, _ = split_sources.split_from_config(config)
  labelled = int(np.count_nonzero(scene["gt_array"]))
  calibrated = split.info["calibrated"]
  low, high = calibrated["accept"]
  assert low <= 0.11 * labelled <= high and high - low <= 0.025 * labelled
  assert calibrated["labelled_pixels"] == labelled and calibrated["fraction"] == 0.11
  assert split.info["params"]["pixel_ratio"] == calibrated["pixel_ratio"]
  assert split.info["custom_scene"]["num_bands"] == 24
  assert split.info["custom_scene"]["class_ids"] == [3, 7, 20, 41]
  # Calibrated, partitions are accepted in fewer attempts than with Indian Pines' own ratios
  # (0.15 / 0.06, whose draws on this scene fall further from 11 %), and are leakage-free.

  def attempts(pixel_ratio, val_ratio):
    config.split.update(pixel_ratio=pixel_ratio, val_ratio=val_ratio)
    counts = []
    for partition in range(1, 11):
      split = split_sources.split_from_config(config, partition=partition, labels=labels)[0]
      covered = _painted(split.train_windows, split.train.shape)
      assert not np.any(covered & ((split.val > 0) | (split.test > 0)))
      counts.append(split.info["attempts"])
    return np.mean(counts)

  calibrated = attempts(None, None)
  assert calibrated <= 3 and 2 * calibrated < attempts(0.15, 0.06)


def test_custom_scene_from_envi_and_geotiff_is_the_mat_scene(tmp_path):
  """The same scene as an ENVI cube (with wavelengths) and a GeoTIFF ground truth: the same
  arrays, classes and split as from the .mat files; the RGB bands come from the wavelengths."""
  scene = write_custom_scene(tmp_path)
  wavelengths = np.linspace(400.0, 1000.0, 24)
  rasters.write_cube(tmp_path / "cube.bsq", scene["cube_array"], driver="ENVI",
                     wavelengths=wavelengths)
  rasters.write_class_map(tmp_path / "gt.tif", scene["gt_array"])
  from_mat = config_util.load_config(f"{CUSTOM}:cube={scene['cube']},gt={scene['gt']}")
  from_rasters = config_util.load_config(f"{CUSTOM}:cube={tmp_path / 'cube.hdr'},"
                                         f"gt={tmp_path / 'gt.tif'}")
  mat, raster = io.scene_of(from_mat), io.scene_of(from_rasters)
  assert raster.shape == mat.shape and raster.class_ids == mat.class_ids == (3, 7, 20, 41)
  assert raster.rgb_bands == scenes.display_bands(24, wavelengths) != mat.rgb_bands
  mat_split, mat_labels, _ = split_sources.split_from_config(from_mat)
  raster_split, raster_labels, _ = split_sources.split_from_config(from_rasters)
  np.testing.assert_array_equal(raster_labels.gt, mat_labels.gt)
  for name in ("train", "val", "test", "train_windows"):
    np.testing.assert_array_equal(getattr(raster_split, name), getattr(mat_split, name))
  np.testing.assert_array_equal(io.load_config_scene(from_rasters).cube,
                                io.load_config_scene(from_mat).cube)


def test_custom_calibration_follows_geometry_overrides(tmp_path):
  """--config.split.block=... (or patch, k_keep) after loading is calibrated for, exactly as the
  block= option: the ratios are derived when the split is made, not when the config loads."""
  scene = write_custom_scene(tmp_path)
  spec = f"{CUSTOM}:cube={scene['cube']},gt={scene['gt']}"
  by_option = config_util.load_config(f"{spec},block=8,patch=6,k_keep=10")
  by_leaf = config_util.load_config(spec)
  by_leaf.split.update(block=8, patch=6, k_keep=10)
  default = split_sources.split_from_config(config_util.load_config(spec), 1)[0]
  first, second = (split_sources.split_from_config(c, 1)[0] for c in (by_option, by_leaf))
  assert first.info["calibrated"] == second.info["calibrated"]
  assert first.content_hash() == second.content_hash()
  assert first.info["calibrated"]["pixel_ratio"] != default.info["calibrated"]["pixel_ratio"]
  assert len(first.train_windows) and np.all(first.train_windows[:, 2] - first.train_windows[:, 0]
                                             == 6)


def test_derived_band_schedule_builds_the_network_of_the_explicit_one(tmp_path):
  """model.band_strides = valid_kernels = None: DA-IMRN takes band_schedule(B) of its input's
  B bands when built, the same network as the schedule written out."""
  scene = write_custom_scene(tmp_path)
  config = config_util.load_config(f"{CUSTOM}:cube={scene['cube']},gt={scene['gt']},runlocal")
  x = jnp.ones((1, 4, 4, 24))
  derived = jax.eval_shape(models.build_model(config.model, 4).init, jax.random.key(0), x)
  strides, kernels = da_imrn.band_schedule(24)
  config.model.update(band_strides=strides, valid_kernels=kernels)
  explicit = jax.eval_shape(models.build_model(config.model, 4).init, jax.random.key(0), x)
  assert jax.tree.map(lambda a: a.shape, derived) == jax.tree.map(lambda a: a.shape, explicit)
  config.model.update(valid_kernels=(2,) + tuple(kernels[1:]))  # another schedule: differs
  other = jax.eval_shape(models.build_model(config.model, 4).init, jax.random.key(0), x)
  assert jax.tree.map(lambda a: a.shape, other) != jax.tree.map(lambda a: a.shape, explicit)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["knn", "da_imrn"])
def test_custom_scene_trains_end_to_end(tmp_path, model):
  """The quick DA-IMRN and KNN on a 47 x 53 int16 scene with class ids 3, 7, 20, 41, named by a
  text file, through configs/custom.py and the launcher; every pixel predicted."""
  scene = write_custom_scene(tmp_path / "data")
  names = tmp_path / "classes.txt"
  names.write_text("forest\nwater\n\nfield\nroad\n")
  workdir = tmp_path / "run"
  spec = f"{CUSTOM}:cube={scene['cube']},gt={scene['gt']},classes={names},model={model}"
  quick = [f"--config={spec},runlocal", "--config.train.epochs=2"] if model == "da_imrn" else \
      [f"--config={spec}"]
  result = _launch("train.py", *quick, f"--workdir={workdir}")
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
  assert "47x53 pixels, 24 bands (values -" in result.stdout
  results = json.loads((workdir / "results.json").read_text())
  assert results["class_ids"] == [3, 7, 20, 41]
  assert results["class_names"] == ["forest", "water", "field", "road"]
  prediction = np.load(workdir / "map.npy")
  assert prediction.shape == (47, 53) and set(np.unique(prediction)) <= {1, 2, 3, 4}
  split = split_files.load_split(workdir / "split.npz")
  raw = np.asarray([0, 3, 7, 20, 41])
  assert np.array_equal(raw[split.test][split.test > 0], scene["gt_array"][split.test > 0])
  covered = _painted(split.train_windows, split.train.shape)
  assert not np.any(covered & ((split.val > 0) | (split.test > 0)))  # leakage-free
  test = split.test > 0
  assert results["oa"] == pytest.approx(np.mean(prediction[test] == split.test[test]))
  assert results["oa"] > 0.5
  info = json.loads((workdir / "split.json").read_text())
  assert [c["raw_id"] for c in info["classes"]] == [3, 7, 20, 41]
  # What was derived at run time is recorded beside the split it made, and said.
  assert info["custom_scene"]["shape"] == [47, 53] and info["custom_scene"]["num_bands"] == 24
  assert info["custom_scene"]["class_names"] == ["forest", "water", "field", "road"]
  assert info["calibrated"]["accept"] == info["params"]["accept"]
  assert f"pixel_ratio {info['calibrated']['pixel_ratio']}," in result.stdout
  config = json.loads((workdir / "config.json").read_text())
  assert config["split"]["pixel_ratio"] is None and "num_bands" not in config["data"]


def test_show_scene_prints_the_summary_and_writes_the_picture(tmp_path):
  scene = write_custom_scene(tmp_path / "data")
  result = _launch("show_scene.py", f"--config={CUSTOM}:cube={scene['cube']},gt={scene['gt']}",
                   f"--out={tmp_path / 'out'}")
  assert result.returncode == 0, result.stderr[-3000:]
  counts = np.bincount(scene["gt_array"].ravel())
  lines = result.stdout.splitlines()
  assert "47x53 pixels, 24 bands" in lines[0]
  cube = scene["cube_array"]
  assert f"values {cube.min():g}..{cube.max():g}" in lines[0]
  for index, raw_id in enumerate((3, 7, 20, 41), start=1):
    assert lines[1 + index].split() == [str(index), str(raw_id), "class", str(raw_id),
                                        f"{counts[raw_id]:,}"]
  assert (tmp_path / "out" / "scene.png").stat().st_size > 10_000


def _ip_masks(ground_truth, with_val: bool):
  rng = np.random.default_rng(7)
  maps = {name: np.zeros_like(ground_truth) for name in ("train", "val", "test")}
  for c in range(1, 17):
    pixels = rng.permutation(np.flatnonzero(ground_truth == c))
    maps["train"].flat[pixels[:15]] = c
    maps["val" if with_val else "test"].flat[pixels[15:20]] = c
    maps["test"].flat[pixels[20:]] = c
  return maps if with_val else {k: v for k, v in maps.items() if k != "val"}


@pytest.mark.slow
@pytest.mark.parametrize("with_val", [True, False])
def test_split_file_on_indian_pines(tmp_path, ground_truths, with_val):
  """--config.split.file: the run's train, val and test pixels are the file's (val drawn from the
  training pixels when the file has none, and said); results.json holds the file's hash and the
  leakage audit of the masks for the model's input size."""
  masks = _ip_masks(ground_truths["ip"].gt, with_val)
  path = tmp_path / "masks.npz"
  np.savez(path, **masks)
  workdir = tmp_path / "run"
  result = _launch("train.py", "--config=configs/ip.py:model=knn", f"--config.split.file={path}",
                   f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr[-3000:]
  split = split_files.load_split(workdir / "split.npz")
  assert np.array_equal(split.test, masks["test"])
  if with_val:
    assert np.array_equal(split.train, masks["train"]) and np.array_equal(split.val, masks["val"])
  else:
    assert "has no val map: validation uses 10 %" in result.stdout
    assert np.array_equal(np.maximum(split.train, split.val), masks["train"])
    assert not np.any((split.train > 0) & (split.val > 0))
    assert np.count_nonzero(split.val) == 16 * round(0.1 * 15)
  results = json.loads((workdir / "results.json").read_text())
  assert results["num_test_pixels"] == np.count_nonzero(masks["test"])
  assert results["split_file"]["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
  # Leakage counted by brute force, pixel pair by pixel pair: a test pixel (r, c) lies inside the
  # 4 x 4 input of a training pixel (tr, tc) -- the pixel at row and column (4 - 1) // 2 = 1 of its
  # window -- when tr - 1 <= r <= tr + 2 and tc - 1 <= c <= tc + 2.
  train_rc, test_rc = np.argwhere(split.train > 0), np.argwhere(masks["test"] > 0)
  offsets = test_rc[:, None, :] - train_rc[None, :, :]  # (test, train, 2): (r - tr, c - tc)
  inside = np.any(np.all((offsets >= -1) & (offsets <= 2), axis=-1), axis=1)
  leakage = results["split_file"]["leakage"]["test"]
  assert leakage["inside"] == np.count_nonzero(inside) > 0
  assert f"{np.count_nonzero(inside):,} of {np.count_nonzero(masks['test']):,} test" in result.stdout
