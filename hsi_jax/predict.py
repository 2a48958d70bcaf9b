"""A trained run applied to a scene of any format: launch/predict.py's work.

  python launch/predict.py --workdir=W --cube=PATH [--cube_key=K] --out=DIR [--seed=k]
      [--probabilities] [--tile=256]

The run's inference bundle (bundle.py) is read from W (a single run) or from one of its runs
(seed<k>/ or partition<k>/ with --seed=k; by default the run with the best validation accuracy:
never the test's). The cube -- .mat / .npz, GeoTIFF or ENVI -- is read a tile at a time
(inference.py) and DIR receives, each under a temporary name until complete:
  map.npy            (H, W) int32 class ids 1..C in the run's numbering (0: no data), as the run's
                     own map.npy
  map.png            the map with the classes' names
  map.tif            for a georeferenced cube: the map on the cube's grid (its CRS and transform),
                     the ids of the training ground-truth file (uint8 / uint16), nodata 0, and the
                     colour table of map.png
  probabilities.npy  with --probabilities: (H, W, C) float32 class probabilities (0 at no data)
  predict.json       what was predicted with what: bundle, cube, pixels per class, warnings, time
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import time
from typing import Optional

import ml_collections
import numpy as np

from hsi_jax import bundle as bundle_lib, compile_cache, config_util, errors, families, fileutil
from hsi_jax import inference, plots
from hsi_jax.data import io, rasters

EXPORT = "python launch/export_bundle.py --workdir={workdir}"


def choose_run(workdir: pathlib.Path, seed: Optional[int]) -> pathlib.Path:
  """The run directory whose bundle predicts: the workdir itself for a single run; for K runs,
  seed<k>/ or partition<k>/ with seed=k, else the one of best validation accuracy."""
  workdir = pathlib.Path(workdir).expanduser()
  if not workdir.is_dir():
    raise errors.UserError(f"--workdir={workdir} is not a directory of a run.")
  runs = sorted(p for p in workdir.iterdir() if p.is_dir() and p.name.startswith(("seed",
                                                                                  "partition")))
  if not runs:
    if seed is not None:
      raise errors.UserError(f"{workdir} holds a single run; drop --seed.")
    return workdir
  if seed is not None:
    for run_dir in runs:
      if run_dir.name in (f"seed{seed}", f"partition{seed}"):
        return run_dir
    raise errors.UserError(f"{workdir} has no run seed{seed}/ or partition{seed}/; its runs: "
                           f"{', '.join(p.name for p in runs)}.")
  scores = {}
  for run_dir in runs:
    results = run_dir / "results.json"
    if not results.is_file():
      raise errors.UserError(f"{workdir} is not finished ({results} is missing): run its train "
                             "command to the end, or name a run with --seed.")
    scores[run_dir] = json.loads(results.read_text())["best_val_accuracy"]
  return max(runs, key=lambda run_dir: scores[run_dir])  # the first of equals


def load_bundle(workdir: pathlib.Path, run_dir: pathlib.Path) -> bundle_lib.Bundle:
  """run_dir's bundle; a BundleError naming the command that makes one from the checkpoint."""
  if not (run_dir / "bundle").exists() and not (workdir / "checkpoints").is_dir():
    raise bundle_lib.BundleError(f"no inference bundle at {run_dir / 'bundle'} and no checkpoint "
                                 f"in {workdir}: is --workdir the work directory of a run?")
  return bundle_lib.load(run_dir / "bundle", "make it from the run's checkpoint: "
                         + EXPORT.format(workdir=workdir))


def load_predictor(workdir: pathlib.Path, seed: Optional[int]):
  """(run directory, its bundle, the bundle's config, the family's TilePredictor) of workdir's
  run chosen by choose_run; the compilation cache on as the run's config says."""
  run_dir = choose_run(workdir, seed)
  bundle = load_bundle(workdir, run_dir)
  config = ml_collections.ConfigDict(config_util.with_added_leaves(bundle.meta["config"]))
  compile_cache.enable(config.compile_cache)
  family = families.family_of(config.model.name)
  predictor = family.make_tile_predictor(config, bundle.num_classes, family.make_mesh(config, 1))
  return run_dir, bundle, config, predictor


def class_colours(num_classes: int) -> np.ndarray:
  """(C + 1, 3) RGB in [0, 1] of classes 0..C, as map.png draws them."""
  return plots.class_image(np.arange(num_classes + 1), num_classes)


def predict(workdir, cube, out, cube_key: str = "", seed: Optional[int] = None,
            probabilities: bool = False, tile: int = inference.DEFAULT_TILE,
            progress=None) -> dict:
  """Classifies every pixel of `cube` with the bundle of workdir's run (choose_run) into `out`
  (see the module docstring); returns predict.json's object."""
  workdir, out = pathlib.Path(workdir).expanduser(), pathlib.Path(out).expanduser()
  if tile < 1:
    raise errors.UserError(f"--tile={tile} must be at least 1 pixel (default "
                           f"{inference.DEFAULT_TILE}; memory grows with its square).")
  run_dir, bundle, config, predictor = load_predictor(workdir, seed)
  if out.exists() and not out.is_dir():
    raise errors.UserError(f"--out={out} is a file, not a directory.")
  with io.open_cube(cube, cube_key) as reader:
    info = reader.info
    inference.check_cube(info, bundle, predictor)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    classes, low, high = _write_maps(reader, predictor, bundle, out, tile, probabilities,
                                     progress)
    seconds = time.perf_counter() - start
  counts = np.bincount(classes.ravel(), minlength=bundle.num_classes + 1)
  names = bundle.meta["class_names"]
  plots.plot_class_map(out / "map.png", classes, names,
                       f"{config.model.name} ({run_dir.name if run_dir != workdir else 'run'}) "
                       f"on {pathlib.Path(cube).name}")
  seen = low <= high  # some pixel held data
  warnings = [w for w in [seen and inference.value_range_warning(info, bundle, low, high)] if w]
  summary = dict(
      workdir=str(workdir), run=str(run_dir), model=config.model.name, cube=str(cube),
      cube_key=cube_key, shape=list(info.shape), georeferenced=info.transform is not None,
      tile=inference.tile_size(tile, predictor), seconds=round(seconds, 2),
      pixels_per_second=round(classes.size / max(seconds, 1e-9), 1),
      no_data_pixels=int(counts[0]),
      pixels_per_class={name: int(n) for name, n in zip(names, counts[1:])},
      value_range=[low, high] if seen else None, train_value_range=bundle.meta["train_value_range"],
      files=sorted({p.name for p in out.iterdir() if not p.name.startswith(".")}
                   | {"predict.json"}),
      warnings=warnings)
  fileutil.write_json(out / "predict.json", summary)
  return summary


def _write_maps(reader, predictor, bundle, out: pathlib.Path, tile: int, probabilities: bool,
                progress) -> tuple[np.ndarray, float, float]:
  """map.npy (and probabilities.npy, map.tif) tile by tile, each renamed into place when whole;
  -> (the map (H, W) int32, the smallest and largest value of the pixels with data)."""
  info = reader.info
  height, width, _ = info.shape
  raw_ids = np.asarray([0] + bundle.meta["class_ids"])  # map.tif holds the ground truth's ids
  low, high = np.inf, -np.inf
  with contextlib.ExitStack() as stack:
    map_path = stack.enter_context(fileutil.atomic_path(out / "map.npy"))
    classes = np.lib.format.open_memmap(map_path, "w+", np.int32, (height, width))
    scores = None
    if probabilities:
      scores_path = stack.enter_context(fileutil.atomic_path(out / "probabilities.npy"))
      scores = np.lib.format.open_memmap(scores_path, "w+", np.float32,
                                         (height, width, bundle.num_classes))
    tif = None
    if info.transform is not None:
      colours = np.zeros((raw_ids.max() + 1, 3))
      colours[raw_ids] = class_colours(bundle.num_classes)
      tif = stack.enter_context(rasters.ClassMapWriter(out / "map.tif", (height, width),
                                                       int(raw_ids.max()), info, colours))
    for done in inference.predict_tiles(reader, predictor, bundle, tile, probabilities,
                                        progress):
      at = (slice(*done.rows), slice(*done.cols))
      classes[at] = done.classes
      if scores is not None:
        scores[at] = done.scores
      if tif is not None:
        tif.write(done.rows, done.cols, raw_ids[done.classes])
      if done.value_range is not None:
        low, high = min(low, done.value_range[0]), max(high, done.value_range[1])
    classes.flush()
    result = np.array(classes)
    del classes, scores  # the memory maps are closed before their files are renamed
  return result, float(low), float(high)
