"""Leakage audit: how many val/test pixels fall inside some training input window.

Works for any split: ours (`split.npz` with `train_windows`), or train/test masks brought from another
paper, whose training inputs are taken to be the `patch` x `patch` neighbourhoods of the training
pixels (`windows_around_mask`).
"""

from __future__ import annotations

import numpy as np

from hsi_jax.data import io, splits


def coverage(windows: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """(H, W) bool: pixels inside at least one (row0, col0, row1, col1) half-open window."""
  counts = np.zeros((shape[0] + 1, shape[1] + 1), np.int64)
  windows = np.asarray(windows, np.int64).reshape(-1, 4)
  r0, c0, r1, c1 = windows.T
  np.add.at(counts, (r0, c0), 1)
  np.add.at(counts, (r0, c1), -1)
  np.add.at(counts, (r1, c0), -1)
  np.add.at(counts, (r1, c1), 1)
  return counts.cumsum(0).cumsum(1)[:shape[0], :shape[1]] > 0


def windows_around_mask(train: np.ndarray, patch: int) -> np.ndarray:
  """Input windows of a pixel-centred protocol: patch x patch around each train pixel, clipped."""
  return splits.patches_around(np.flatnonzero(train), train.shape, patch)


def audit(train_windows: np.ndarray, evaluated: dict[str, np.ndarray], num_classes: int) -> dict:
  """For each evaluated map (name -> (H, W) class ids), pixels inside training windows.

  Returns {name: {"inside_training_windows": [per class], "total": [per class],
  "inside_total": int, "total_pixels": int, "fraction": float}}.
  """
  shape = next(iter(evaluated.values())).shape
  covered = coverage(train_windows, shape)
  report = {}
  for name, labels in evaluated.items():
    inside = np.bincount(labels[covered].ravel(), minlength=num_classes + 1)[1:]
    total = np.bincount(labels.ravel(), minlength=num_classes + 1)[1:]
    report[name] = dict(inside_training_windows=inside.tolist(), total=total.tolist(),
                        inside_total=int(inside.sum()), total_pixels=int(total.sum()),
                        fraction=float(inside.sum() / max(total.sum(), 1)))
  return report


def format_report(report: dict, class_names) -> str:
  """A plain-text table: per class, val/test pixels inside training windows out of all."""
  names = list(report)
  lines = ["class".ljust(32) + "".join(f"{n + ' inside/total':>24}" for n in names)]
  for c, class_name in enumerate(class_names):
    lines.append(f"{c + 1:>2} {class_name[:29]:<29}" + "".join(
        f"{report[n]['inside_training_windows'][c]:>14d}/{report[n]['total'][c]:<9d}"
        for n in names))
  lines.append("total".ljust(32) + "".join(
      f"{report[n]['inside_total']:>14d}/{report[n]['total_pixels']:<9d}" for n in names))
  lines.append("leaked fraction".ljust(32) + "".join(
      f"{100 * report[n]['fraction']:>22.2f} %" for n in names))
  return "\n".join(lines)


def check_windows(windows, shape: tuple[int, int], where: str) -> np.ndarray:
  """An (N, 4) int64 array of half-open (row0, col0, row1, col1) windows inside an (H, W) scene;
  anything else is a DataError naming the first bad row."""
  windows = np.asarray(windows)
  if windows.ndim != 2 or windows.shape[1] != 4 or windows.dtype.kind not in "iu":
    raise io.DataError(f"{where} must be an N x 4 integer array of (row0, col0, row1, col1) "
                       f"windows, got shape {windows.shape} of type {windows.dtype}.")
  windows = windows.astype(np.int64)
  r0, c0, r1, c1 = windows.T
  bad = (r0 < 0) | (c0 < 0) | (r1 > shape[0]) | (c1 > shape[1]) | (r0 >= r1) | (c0 >= c1)
  if bad.any():
    index = int(np.flatnonzero(bad)[0])
    raise io.DataError(f"{where}: window {index} {windows[index].tolist()} is not a non-empty "
                       f"window inside the {shape[0]}x{shape[1]} scene ({bad.sum()} such windows).")
  return windows


def read_masks(path) -> dict[str, np.ndarray]:
  """The `train`, `test` and (when present) `val` class maps of a split file (.npz or .mat), as
  checked int32 maps of one shape, plus `train_windows` when the file has them (checked)."""
  arrays = io.read_arrays(path)
  if "train" not in arrays or "test" not in arrays:
    raise io.DataError(f"{path} needs arrays 'train' and 'test' (H x W class maps, 0 = not in the "
                       f"set); it holds {', '.join(sorted(arrays)) or 'none'}.")
  masks = {name: io.class_map(arrays[name], f"{path}: {name!r}")
           for name in ("train", "val", "test") if name in arrays}
  shapes = {name: mask.shape for name, mask in masks.items()}
  if len(set(shapes.values())) > 1:
    sizes = ", ".join(f"{name} {shape[0]}x{shape[1]}" for name, shape in shapes.items())
    raise io.DataError(f"{path}: the maps differ in shape ({sizes}); they must cover the same "
                       "scene.")
  if "train_windows" in arrays:
    masks["train_windows"] = check_windows(arrays["train_windows"], masks["train"].shape,
                                           f"{path}: 'train_windows'")
  return masks


def audit_file(path, patch: int | None = None) -> tuple[dict, int]:
  """Audits a split file: our split.npz, or any .npz / .mat holding `train` and `test` (and
  optionally `val`) class maps; without `train_windows` the inputs are `patch`-sided neighbourhoods
  of the train pixels. Returns (report, num_classes)."""
  if patch is not None and patch < 1:
    raise io.DataError(f"--patch={patch}: the input patch side must be at least 1 (27 for a 27x27 "
                       "patch around each training pixel).")
  masks = read_masks(path)
  if patch is not None:
    windows = windows_around_mask(masks["train"], patch)
  elif "train_windows" in masks:
    windows = masks["train_windows"]
  else:
    raise io.DataError(f"{path} has no train_windows: give the network's input patch size "
                       "(--patch=27 for a 27x27 patch around each training pixel).")
  evaluated = {name: masks[name].astype(np.int64) for name in ("val", "test") if name in masks}
  num_classes = max(int(mask.max()) for name, mask in masks.items() if name != "train_windows")
  return audit(windows, evaluated, num_classes), num_classes
