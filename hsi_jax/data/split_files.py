"""A split on disk (split.npz, split.json, split.png) and a split made from a config."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import time
from typing import Optional

import numpy as np

from hsi_jax import fileutil
from hsi_jax.data import audit, io, scenes, splits
from hsi_jax import plots


VAL_SHARE = 0.1  # of each class's training pixels, for a split file without a val map


def split_from_config(config, partition: Optional[int] = None,
                      labels: Optional[io.SceneData] = None, windowed: bool = True):
  """(split, labels, seconds): the config's scene ground truth split as partition `partition`
  (default config.partition; partition k is drawn with seed k), or the user's masks of
  config.split.file (split_from_file).

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
    split = split_from_file(config.split.file, labels, config.split.patch, partition)
  else:
    protocol, params = splits.params_from_config(config.split)
    split = splits.make_split(labels.gt, labels.num_classes, partition, protocol, params)
  seconds = time.perf_counter() - start
  split.info.update(scene=config.scene, seconds=round(seconds, 4))
  return split, labels, seconds


def split_from_file(path, labels: io.SceneData, patch: int, partition: int) -> splits.Split:
  """The split of a user's train / test (and optional val) masks (`audit.read_masks`), class ids
  as in the ground-truth file: exactly those pixel sets, each pixel's input its patch x patch
  neighbourhood (protocol "file"). Without a val map, VAL_SHARE of each class's training pixels
  (drawn with seed `partition`) validate instead of training. split.info records the file's
  sha256 and the leakage audit of the masks for this patch. Masks that disagree with the ground
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
      chosen = pixels[:int(round(VAL_SHARE * pixels.size))] if pixels.size > 1 else pixels[:0]
      maps["val"].flat[chosen] = c
      maps["train"].flat[chosen] = 0
  for name in ("train", "val", "test"):
    if not maps[name].any():
      raise splits.SplitError(
          f"{path}: no {name} pixel" + (f" (the val pixels are {100 * VAL_SHARE:.0f} % of each "
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
                    file_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                    val_from_train=val_from_train, patch=int(patch),
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
  split = load_split(path)
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
              file_sha256=hashlib.sha256(path.read_bytes()).hexdigest(), patch=int(patch),
              leakage={name: dict(inside=r["inside_total"], total=r["total_pixels"],
                                  fraction=r["fraction"]) for name, r in report.items()})
  arrays = {name: getattr(split, name).astype(np.int32) for name in splits.ARRAY_NAMES}
  arrays["train_flips"] = split.train_flips.astype(np.int8)
  return splits.Split(info=info, **arrays)


def file_lines(split: splits.Split) -> list[str]:
  """What a run on a split file says about it: the file, the val pixels' origin, the audit."""
  info = split.info
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
    lines.append(f"the split file has no val map: validation uses {100 * VAL_SHARE:.0f} % of each "
                 f"class's training pixels (drawn with partition {info['partition']}), which are "
                 "not trained on")
  return lines


def summary(split: splits.Split, labels: io.SceneData) -> dict:
  """What split.json holds: the protocol, its parameters, per-class counts (with each class's id
  in the ground-truth file, `raw_id`) and the content hash."""
  counts = split.class_counts(labels.num_classes)
  raw_ids = labels.class_ids
  classes = [dict(id=c + 1, raw_id=raw_ids[c], name=name, **{k: v[c] for k, v in counts.items()})
             for c, name in enumerate(labels.class_names)]
  return dict(split.info, content_hash=split.content_hash(), classes=classes,
              totals={k: int(sum(v)) for k, v in counts.items()},
              windows={name: len(getattr(split, name)) for name in splits.WINDOW_NAMES})


def save_split(out_dir: os.PathLike, split: splits.Split, labels: io.SceneData) -> dict:
  """Writes split.npz, split.json and split.png into out_dir (each atomically); returns the json."""
  out_dir = pathlib.Path(out_dir).expanduser()
  with fileutil.atomic_path(out_dir / "split.npz") as tmp:
    with open(tmp, "wb") as file:
      np.savez_compressed(file, **split.arrays())
  info = summary(split, labels)
  fileutil.write_json(out_dir / "split.json", info)
  title = (f"{info.get('scene', '')} {info['protocol']} split, partition {info['partition']}\n"
           f"hash {info['content_hash'][:12]}")
  plots.plot_split(out_dir / "split.png", split.arrays(), labels.gt, title)
  return info


def load_split(path: os.PathLike) -> splits.Split:
  """Reads split.npz (and split.json beside it, when present, into `info`)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"No split file at {path}; make one with launch/make_splits.py.")
  with np.load(path) as data:
    missing = [n for n in splits.MAP_NAMES + splits.WINDOW_NAMES + ("train_window_labels",)
               if n not in data.files]
    if missing:
      raise splits.SplitError(f"{path} is not a split.npz: arrays {missing} are missing "
                              f"(present: {data.files}).")
    arrays = {name: data[name] for name in data.files}
  arrays.setdefault("train_flips", np.full(len(arrays["train_windows"]), -1, np.int8))
  info_path = path.with_suffix(".json")
  info = {}
  if info_path.is_file():
    info = json.loads(info_path.read_text())
  return splits.Split(info=info, **{k: v for k, v in arrays.items() if k in splits.ARRAY_NAMES})


def format_summary(info: dict) -> str:
  """Per-class table of split.json for the terminal."""
  lines = [f"{info.get('scene', '')} {info['protocol']} split, partition {info['partition']}, "
           f"hash {info['content_hash'][:16]}" +
           (f", accepted on attempt {info['attempts']}" if "attempts" in info else "")]
  lines.append(f"{'class':<34}{'train':>7}{'leaked':>8}{'val':>7}{'test':>7}")
  for c in info["classes"]:
    lines.append(f"{c['id']:>2} {c['name'][:31]:<31}{c['train']:>7}{c['leaked']:>8}{c['val']:>7}"
                 f"{c['test']:>7}")
  t = info["totals"]
  lines.append(f"{'total':<34}{t['train']:>7}{t['leaked']:>8}{t['val']:>7}{t['test']:>7}")
  w = info["windows"]
  lines.append(f"windows: train {w['train_windows']}, val {w['val_windows']}, "
               f"test {w['test_tiles']}")
  return "\n".join(lines)


def format_stats(config, seeds) -> str:
  """A markdown table row of acceptance statistics over `seeds` (see launch/split_stats.py)."""
  attempts, totals, seconds, failures = [], [], [], 0
  for seed in seeds:
    try:
      split, labels, elapsed = split_from_config(config, seed)
    except splits.SplitError:
      failures += 1
      continue
    attempts.append(split.info.get("attempts", 1))
    totals.append(summary(split, labels)["totals"])
    seconds.append(elapsed)
  if not totals:
    return f"| {config.scene} | no seed of {len(list(seeds))} accepted |"
  mean = {k: np.mean([t[k] for t in totals]) for k in totals[0]}
  within10 = np.mean(np.array(attempts) <= 10)
  return (f"| {config.scene} | {config.split.protocol} | {config.split.pixel_ratio} / "
          f"{config.split.val_ratio} | {attempts} | {failures} | {100 * within10:.0f} % | "
          f"{mean['train']:.0f} / {mean['leaked']:.0f} / {mean['val']:.0f} / {mean['test']:.0f} | "
          f"{np.mean(seconds):.3f} / {np.max(seconds):.3f} |")
