"""Where a run's split comes from: drawn from the config, a user's masks, a split made elsewhere.

`split_from_config` dispatches on config.split: `npz` (a complete split.npz made elsewhere, used
exactly as given and checked: split_from_npz), `file` (a user's train / test (/ val) masks:
split_from_file), else the protocol's generator (splits.make_split), with the `blocks` values a
scene without calibrated ones leaves unset derived first (calibrated_params). `source_lines` is
what a run says about its split's origin. Saving and loading a split: split_files.py; its tables
and statistics: split_tables.py.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Optional

import numpy as np

from hsi_jax import fileutil
from hsi_jax.data import audit, custom, io, scenes, split_files, splits


def split_from_config(config, partition: Optional[int] = None,
                      labels: Optional[io.SceneData] = None, windowed: bool = True):
  """(split, labels, seconds): the config's scene ground truth split as partition `partition`
  (default config.partition; partition k is drawn with seed k; `blocks` ratios the config leaves
  unset are calibrated first: calibrated_params), or the user's masks of config.split.file
  (split_from_file), or the split.npz of config.split.npz (split_from_npz). split.info records
  the scene, the seconds taken, what was calibrated (`calibrated`) and, for a custom scene, what
  was derived from its files (`custom_scene`).

  `windowed`: the model's inputs are the split's windows (DA-IMRN), so a split.npz's windows must
  be split.patch wide; a pixel model (False) takes a split.npz's maps and training region only.
  Needs only the ground truth (read from disk unless `labels` is given), so PU / SV splits work
  without their cubes.
  """
  labels = labels or io.load_config_labels(config)
  partition = config.partition if partition is None else partition
  start = time.perf_counter()
  if config.split.get("npz"):
    split = split_from_npz(npz_path(config.split.npz, partition), labels, config.split.patch,
                           partition, check_patch=windowed)
  elif config.split.get("file"):
    split = split_from_file(config.split.file, labels, config.split.patch, partition,
                            config.split.file_val_share)
  else:
    protocol, params = splits.params_from_config(config.split)
    calibrated = {}
    if protocol == "blocks":
      params, calibrated = calibrated_params(params, labels, config.split.get("calibration"))
    split = splits.make_split(labels.gt, labels.num_classes, partition, protocol, params)
    if calibrated:
      split.info["calibrated"] = calibrated
  seconds = time.perf_counter() - start
  split.info.update(scene=config.scene, seconds=round(seconds, 4))
  scene_record = custom.scene_record(config)
  if scene_record:
    split.info["custom_scene"] = scene_record
  return split, labels, seconds


def calibrated_params(params: splits.BlocksParams, labels: io.SceneData,
                      calibration) -> tuple[splits.BlocksParams, dict]:
  """`params` with the values the config leaves unset (None) derived for the scene from
  `calibration` (config.split.calibration): pixel_ratio and val_ratio (both unset) whose draws
  hold about `fraction` of the labelled pixels each in train and in val (splits.calibrate_blocks
  from `start_ratios`, `rounds` rescalings over `draws` attempts), and accept bounds (unset) of
  fraction -+ tolerance of the labelled pixels. Returns (params, what was derived with its target:
  split.json's `calibrated`, {} when nothing was unset)."""
  ratios_unset = params.pixel_ratio is None or params.val_ratio is None
  if not ratios_unset and params.accept is not None:
    return params, {}
  if calibration is None:
    raise splits.SplitError("split.pixel_ratio, val_ratio and accept must be set: this config has "
                            "no split.calibration to derive them from.")
  if ratios_unset and (params.pixel_ratio is not None or params.val_ratio is not None):
    raise splits.SplitError("split.pixel_ratio and split.val_ratio are calibrated together: set "
                            "both, or neither.")
  labelled = int(np.count_nonzero(labels.gt))
  fraction, tolerance = calibration.fraction, calibration.tolerance
  derived = {}
  if ratios_unset:
    start_pixel_ratio, start_val_ratio = calibration.start_ratios
    start = dataclasses.replace(params, pixel_ratio=start_pixel_ratio, val_ratio=start_val_ratio,
                                accept=(0, labelled))
    derived["pixel_ratio"], derived["val_ratio"] = splits.calibrate_blocks(
        labels.gt, labels.num_classes, start, fraction, fraction, rounds=calibration.rounds,
        draws=calibration.draws)
  if params.accept is None:
    derived["accept"] = (int(np.floor(labelled * (fraction - tolerance))),
                         int(np.ceil(labelled * (fraction + tolerance))))
  record = dict(derived, fraction=fraction, tolerance=tolerance, labelled_pixels=labelled)
  return dataclasses.replace(params, **derived), record


def split_from_file(path, labels: io.SceneData, patch: int, partition: int,
                    val_share: float) -> splits.Split:
  """The split of a user's train / test (and optional val) masks (`audit.read_masks`), class ids
  as in the ground-truth file: exactly those pixel sets, each pixel's input its patch x patch
  neighbourhood (protocol "file"). Without a val map, `val_share` of each class's training pixels
  (drawn with seed `partition`; config.split.file_val_share) validate instead of training.
  split.info records the file's sha256, the val share used and the leakage audit of the masks
  for this patch. Masks that disagree with the ground
  truth, overlap, or leave a class without training pixels are a SplitError."""
  path = pathlib.Path(path).expanduser()
  masks = audit.read_masks(path)
  maps = {name: masks[name] for name in ("train", "val", "test") if name in masks}
  if masks["train"].shape != labels.gt.shape:
    raise splits.SplitError(f"{path}: the masks are {masks['train'].shape[0]}x"
                            f"{masks['train'].shape[1]} pixels, the scene is {labels.gt.shape[0]}x"
                            f"{labels.gt.shape[1]}; they must be maps of this scene.")
  raw_ids = labels.class_ids
  for name, mask in maps.items():
    unknown = scenes.unknown_ids(mask, raw_ids)
    if unknown:
      raise splits.SplitError(f"{path}: {name!r} holds class ids {unknown} the ground truth does "
                              f"not have (its ids: {list(raw_ids)}).")
    remapped = scenes.remap_classes(mask, raw_ids)
    wrong = (remapped > 0) & (remapped != labels.gt)
    if wrong.any():
      row, col = np.argwhere(wrong)[0]
      hint = " (0 / 1 masks? a mask holds each pixel's class id)" if mask.max() == 1 else ""
      raise splits.SplitError(f"{path}: {name!r} disagrees with the ground truth at {wrong.sum()} "
                              f"pixels (first: row {row}, col {col}, {mask[row, col]} against "
                              f"{raw_ids[labels.gt[row, col] - 1] if labels.gt[row, col] else 0}); "
                              f"masks hold the ground truth's class ids{hint}.")
    maps[name] = remapped
  names = list(maps)
  for i, first in enumerate(names):
    for second in names[i + 1:]:
      both = np.count_nonzero((maps[first] > 0) & (maps[second] > 0))
      if both:
        raise splits.SplitError(f"{path}: {both} pixels are in both {first!r} and {second!r}; "
                                "each pixel may be in one set only.")
  val_from_train = "val" not in maps
  if val_from_train:
    rng = np.random.default_rng(partition)
    maps["val"] = np.zeros_like(maps["train"])
    for c in range(1, labels.num_classes + 1):
      pixels = rng.permutation(np.flatnonzero(maps["train"] == c))
      chosen = pixels[:int(round(val_share * pixels.size))] if pixels.size > 1 else pixels[:0]
      maps["val"].flat[chosen] = c
      maps["train"].flat[chosen] = 0
  for name in ("train", "val", "test"):
    if not maps[name].any():
      raise splits.SplitError(
          f"{path}: no {name} pixel" + (f" (the val pixels are {100 * val_share:.0f} % of each "
                                        "class's training pixels: give a val map, or more "
                                        "training pixels)" if name == "val" and val_from_train
                                        else "") + f"; the {name} map must mark some pixels.")
  evaluated = set(np.unique(maps["test"][maps["test"] > 0]).tolist())
  untrained = sorted(raw_ids[c - 1] for c in evaluated - set(np.unique(maps["train"]).tolist()))
  if untrained:
    raise splits.SplitError(f"{path}: classes {untrained} have test pixels but no training pixel"
                            + (" (after the val pixels were drawn from train)" if val_from_train
                               else "") + "; give each tested class some training pixels.")
  split = splits.split_from_maps(maps["train"], maps["val"], maps["test"], patch)
  report = audit.audit(split.train_windows, {"val": split.val, "test": split.test},
                       labels.num_classes)
  split.info.update(protocol="file", partition=int(partition), file=str(path),
                    file_sha256=fileutil.file_sha256(path),
                    val_from_train=val_from_train, patch=int(patch),
                    **(dict(val_share=float(val_share)) if val_from_train else {}),
                    leakage={name: dict(inside=r["inside_total"], total=r["total_pixels"],
                                        fraction=r["fraction"]) for name, r in report.items()})
  return split


def npz_path(template: str, partition: int) -> pathlib.Path:
  """The split.npz of `partition`: `template` with `{partition}` filled in (split.npz)."""
  return pathlib.Path(template.replace("{partition}", str(partition))).expanduser()


def split_from_npz(path, labels: io.SceneData, patch: int, partition: int,
                   check_patch: bool = True) -> splits.Split:
  """A complete split made elsewhere (our split.npz format), used exactly as given: training
  windows, flips, per-window labels, validation windows (duplicates kept), test tiles and maps
  (protocol "npz"). Checked before use, each failure one SplitError: the maps' shape against the
  scene, every label (maps and per-window labels) against the ground truth, no pixel in two of
  train / val / test, every window inside the scene, flips in {-1, 0, 1}, train / val windows
  `patch` x `patch` (when `check_patch`: the windows family's input), and the leakage audit (no
  val / test pixel inside a training window). split.info records the file's sha256."""
  path = pathlib.Path(path)
  split = split_files.load_split(path)
  scene_shape = labels.gt.shape
  if split.train.shape != scene_shape or any(getattr(split, name).shape != scene_shape
                                             for name in splits.MAP_NAMES):
    shapes = ", ".join(f"{name} {getattr(split, name).shape}" for name in splits.MAP_NAMES)
    raise splits.SplitError(f"{path}: its maps ({shapes}) are not the scene's {scene_shape[0]}x"
                            f"{scene_shape[1]} pixels; the split must be made on this scene.")
  gt = labels.gt
  for name in splits.MAP_NAMES:
    labels_map = getattr(split, name)
    wrong = (labels_map > 0) & (labels_map != gt)
    if wrong.any():
      row, col = np.argwhere(wrong)[0]
      raise splits.SplitError(f"{path}: {name!r} disagrees with the ground truth at {wrong.sum()} "
                              f"pixels (first: row {row}, col {col}: {labels_map[row, col]} "
                              f"against {gt[row, col]}); the split's maps hold class ids "
                              f"1..{labels.num_classes} of this scene's ground truth.")
  for first, second in (("train", "val"), ("train", "test"), ("val", "test"), ("leaked", "val"),
                        ("leaked", "test")):
    both = np.count_nonzero((getattr(split, first) > 0) & (getattr(split, second) > 0))
    if both:
      raise splits.SplitError(f"{path}: {both} pixels are in both {first!r} and {second!r}; "
                              "each pixel may be in one set only.")
  windows = {}
  for name in splits.WINDOW_NAMES:
    try:
      windows[name] = audit.check_windows(getattr(split, name), scene_shape, f"{path}: {name!r}")
    except io.DataError as error:
      raise splits.SplitError(str(error)) from None
  num_train = len(windows["train_windows"])
  if split.train_flips.shape != (num_train,) or not np.isin(split.train_flips, (-1, 0, 1)).all():
    raise splits.SplitError(f"{path}: 'train_flips' must hold one of -1 (no copy), 0 (up-down), "
                            f"1 (left-right) per training window ({num_train}), got shape "
                            f"{split.train_flips.shape} with values "
                            f"{np.unique(split.train_flips).tolist()[:5]}.")
  if check_patch:
    for name in ("train_windows", "val_windows"):
      sides = np.concatenate([windows[name][:, 2] - windows[name][:, 0],
                              windows[name][:, 3] - windows[name][:, 1]])
      if (sides != patch).any():
        raise splits.SplitError(f"{path}: {name!r} are {'/'.join(map(str, np.unique(sides)))} "
                                f"pixels wide, the model's input patch is {patch} "
                                f"(split.patch): the split was made for another patch size.")
  window_labels = split.train_window_labels
  if window_labels.shape != (num_train, patch, patch) and check_patch:
    raise splits.SplitError(f"{path}: 'train_window_labels' has shape {window_labels.shape}, "
                            f"expected ({num_train}, {patch}, {patch}): one label patch per "
                            "training window.")
  if check_patch:
    truth = splits.map_window_labels(gt, windows["train_windows"], patch)
    wrong = (window_labels > 0) & (window_labels != truth)
    if wrong.any():
      index = int(np.argwhere(wrong)[0][0])
      raise splits.SplitError(f"{path}: 'train_window_labels' disagree with the ground truth at "
                              f"{wrong.sum()} pixels (first in training window {index}, "
                              f"{windows['train_windows'][index].tolist()}); each window's labels "
                              "must be the ground truth's or 0.")
  report = audit.audit(windows["train_windows"], {"val": split.val, "test": split.test},
                       labels.num_classes)
  inside = {name: r["inside_total"] for name, r in report.items() if r["inside_total"]}
  if inside:
    counts = " and ".join(f"{n:,} {name}" for name, n in inside.items())
    raise splits.SplitError(f"{path}: {counts} pixels lie inside training windows; a split used "
                            "as given must be leakage-free (launch/audit_split.py lists them).")
  info = dict(protocol="npz", partition=int(partition), file=str(path),
              file_sha256=fileutil.file_sha256(path), patch=int(patch),
              leakage={name: dict(inside=r["inside_total"], total=r["total_pixels"],
                                  fraction=r["fraction"]) for name, r in report.items()})
  arrays = {name: getattr(split, name).astype(np.int32) for name in splits.ARRAY_NAMES}
  arrays["train_flips"] = split.train_flips.astype(np.int8)
  return splits.Split(info=info, **arrays)


def source_lines(split: splits.Split) -> list[str]:
  """What a run says about where its split came from: a split file (the file, the val pixels'
  origin, the audit), a split.npz (the file), or the `blocks` values calibrated for the scene."""
  info = split.info
  if "calibrated" in info:
    return [_calibrated_line(info["calibrated"], info["params"])]
  if info.get("protocol") == "npz":
    return [f"split as given in {info['file']} (sha256 {info['file_sha256'][:16]}): 0 val / test "
            "pixels inside training windows"]
  if info.get("protocol") != "file":
    return []
  test = info["leakage"]["test"]
  lines = [f"split file {info['file']} (sha256 {info['file_sha256'][:16]}): leakage audit for "
           f"{info['patch']}x{info['patch']} inputs: {test['inside']:,} of {test['total']:,} test "
           f"pixels ({100 * test['fraction']:.2f} %) lie inside some training input"]
  if info["val_from_train"]:
    lines.append(f"the split file has no val map: validation uses "
                 f"{100 * info['val_share']:.0f} % of each class's training pixels (drawn with "
                 f"partition {info['partition']}), which are not trained on")
  return lines


def calibration_lines(config, labels: io.SceneData) -> list[str]:
  """What the config's `blocks` split would calibrate for the scene (before any split is made:
  launch/show_scene.py); [] when the config sets every value or takes its split from a file."""
  if config.split.protocol != "blocks" or config.split.get("file") or config.split.get("npz"):
    return []
  params, calibrated = calibrated_params(splits.params_from_config(config.split)[1], labels,
                                         config.split.get("calibration"))
  return [_calibrated_line(calibrated, dataclasses.asdict(params))] if calibrated else []


def _calibrated_line(calibrated: dict, params: dict) -> str:
  return (f"blocks split calibrated for this scene (train and val each "
          f"{100 * calibrated['fraction']:g} % of the {calibrated['labelled_pixels']:,} labelled "
          f"pixels): block {params['block']}, patch {params['patch']}, k_keep {params['k_keep']}, "
          f"pixel_ratio {params['pixel_ratio']}, val_ratio {params['val_ratio']}, train and val "
          f"accepted in {list(params['accept'])} px")
