"""Deterministic train / leaked / val / test partitions of a ground-truth map (pure numpy).

Two protocols, both driven by one `numpy.random.Generator` made from the seed, so the same seed gives
the same split, bit for bit, on every machine. Neither needs the cube.

* `blocks` -- the DA-IMRN leakage-free partition (docs/decisions.md, "IP partition", "PU and SV
  partitions", "Partition seeds", "Acceptance loop").
  Per class, `ceil(n_c * pixel_ratio / k_keep)` training blocks (bs x bs, centred on a labelled
  pixel of that class, always fully inside the scene) are drawn with replacement. In each block at
  most `k_keep` labelled pixels (of any class) stay *train*, the others become *leaked*: they are seen
  as unlabelled context and never scored. Inside each block the (bs-p+1)^2 windows of side p that
  hold a train pixel are enumerated row-major and, counting over all blocks in order, every other
  one is kept (the code's global alternation). Each kept window has a recorded flip (0 = up-down,
  1 = left-right) for its augmented copy. Train blocks are then erased from the map; validation
  blocks (centres drawn at the start, from the full map, as the official code does) take every
  labelled pixel left in them; the rest are test pixels, scored on non-overlapping p x p tiles from
  the top-left corner (a border narrower than p is never tested, as in the code). Each kept window
  carries the train labels of its own block (`train_window_labels`, as the official saved windows
  do): where train blocks overlap, a pixel kept by one block and leaked by another is supervised in
  the first block's windows. The `train` / `leaked` maps keep the last block written (the official
  counts). The attempt is repeated until train and val totals lie in `accept` and every class has a
  train pixel; otherwise an error names the closest totals. No val or test pixel lies inside any
  training window (tested).
* `pixels` -- random pixels per class: `per_class` pixels (or a `fraction` of each class) for
  training, then `val_per_class` for validation, the rest test (the SSAN protocol: 100/100/rest).
  A class too small for the request gives at most half its pixels to train and half of the rest
  to val (recorded in `capped_classes`). Windows are the `patch` x `patch` inputs around each pixel,
  clipped to the scene -- they overlap test pixels, which `audit.py` reports. Their window labels
  are the train map inside each p x p window.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Optional

import numpy as np

from hsi_jax import errors
from hsi_jax.data import scenes as scenes_lib

PROTOCOLS = ("blocks", "pixels")
MAP_NAMES = ("train", "leaked", "val", "test")
WINDOW_NAMES = ("train_windows", "val_windows", "test_tiles")
ARRAY_NAMES = MAP_NAMES + WINDOW_NAMES + ("train_flips", "train_window_labels")


class SplitError(errors.UserError, ValueError):
  """The requested split cannot be made from this ground truth with these parameters."""


@dataclasses.dataclass(frozen=True)
class BlocksParams:
  block: int                       # side of train / val blocks (bs)
  patch: int                       # side of network input windows (p)
  pixel_ratio: Optional[float]     # sets train blocks per class (None: calibrated for the scene)
  val_ratio: Optional[float]       # sets val blocks per class (None: calibrated for the scene)
  k_keep: int                      # labelled pixels kept as train per block
  accept: Optional[tuple[int, int]]  # [min, max] for both the train and the val pixel totals
  max_attempts: int = 100


@dataclasses.dataclass(frozen=True)
class PixelsParams:
  patch: int                       # side of the input patch around a pixel
  per_class: Optional[int] = None  # training pixels per class ...
  fraction: Optional[float] = None  # ... or this fraction of each class (exactly one of the two)
  val_per_class: int = 0           # validation pixels per class


@dataclasses.dataclass(frozen=True)
class Split:
  """Maps are (H, W) int32 class ids (0 = not in that set); windows (N, 4) int32 half-open
  (row0, col0, row1, col1); `train_flips` (N,) int8: flip axis of each train window's augmented
  copy (-1 = no augmentation); `train_window_labels` (N, p, p) int32: the class ids each train
  window is trained on (0 = no label), before the flip."""
  train: np.ndarray
  leaked: np.ndarray
  val: np.ndarray
  test: np.ndarray
  train_windows: np.ndarray
  val_windows: np.ndarray
  test_tiles: np.ndarray
  train_flips: np.ndarray
  train_window_labels: np.ndarray
  info: dict  # protocol, partition (the seed), parameters, attempts, ... (JSON-serialisable)

  def arrays(self) -> dict[str, np.ndarray]:
    return {name: getattr(self, name) for name in ARRAY_NAMES}

  def content_hash(self) -> str:
    """sha256 over every array (name, dtype, shape, bytes): equal hashes = identical splits."""
    digest = hashlib.sha256()
    for name, array in sorted(self.arrays().items()):
      digest.update(name.encode())
      digest.update(scenes_lib.array_hash(array).encode())
    return digest.hexdigest()

  def class_counts(self, num_classes: int) -> dict[str, list[int]]:
    """Pixels per class (index 0 = class 1) in each of the four maps."""
    return {name: np.bincount(getattr(self, name).ravel(), minlength=num_classes + 1)[1:]
            .tolist() for name in MAP_NAMES}


def make_split(gt: np.ndarray, num_classes: int, seed: int, protocol: str, params) -> Split:
  """Splits ground truth `gt` (H, W; classes 1..num_classes) with one Generator from `seed`."""
  gt = np.asarray(gt)
  if gt.ndim != 2:
    raise SplitError(f"Ground truth must be 2-D (H, W), got shape {gt.shape}.")
  if not np.any(gt > 0):
    raise SplitError("Ground truth has no labelled pixel: nothing to split.")
  if gt.max() > num_classes:
    raise SplitError(f"Ground truth holds class id {gt.max()} but num_classes is {num_classes}.")
  rng = np.random.default_rng(seed)
  gt = gt.astype(np.int32)
  if protocol == "blocks":
    split = _blocks_split(gt, num_classes, rng, params)
  elif protocol == "pixels":
    split = _pixels_split(gt, num_classes, rng, params)
  else:
    raise SplitError(f"Unknown split protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}.")
  split.info.update(protocol=protocol, partition=int(seed),
                    params=dataclasses.asdict(params))
  if not np.any(split.test > 0):
    raise SplitError(f"The {protocol} split leaves no test pixel: every labelled pixel went to "
                     "train or validation. Lower split.per_class / split.fraction (pixels) or "
                     "split.pixel_ratio / split.val_ratio (blocks).")
  return split


MIN_TEST_PIXELS = 100  # below this a single pixel moves OA by more than 1 %


def split_warnings(gt: np.ndarray, split: Split) -> list[str]:
  """What a run on this split should warn about (printed and kept in results.json): a ground
  truth of one class, classes too small for the `pixels` counts asked for, a handful of test
  pixels."""
  warnings = []
  present = np.unique(gt[gt > 0])
  if len(present) == 1:
    warnings.append("the ground truth holds a single class: every prediction of that class is "
                    "right, so OA and kappa say nothing about the model.")
  capped = split.info.get("capped_classes")
  if capped:
    warnings.append(f"classes {capped} are too small for split.per_class / split.fraction / "
                    "split.val_per_class: each keeps at most half its pixels for training and a "
                    "quarter for validation (split.json has the counts).")
  num_test = int(np.count_nonzero(split.test))
  if 0 < num_test < MIN_TEST_PIXELS:
    warnings.append(f"only {num_test} test pixels: one pixel moves OA by {100 / num_test:.1f} "
                    "points; these numbers are not comparable with a full-scene evaluation.")
  return warnings


# ----------------------------------------------------------------------------- blocks protocol


def _window_sums(mask: np.ndarray, size: int, stride: int = 1) -> np.ndarray:
  """Sum of `mask` (..., h, w) over every size x size window (top-left on a `stride` grid)."""
  integral = np.pad(mask.astype(np.int32).cumsum(-2).cumsum(-1),
                    [(0, 0)] * (mask.ndim - 2) + [(1, 0), (1, 0)])
  rows = np.arange(0, mask.shape[-2] - size + 1, stride)
  cols = np.arange(0, mask.shape[-1] - size + 1, stride)
  r, c = rows[:, None], cols[None, :]
  return (integral[..., r + size, c + size] - integral[..., r, c + size]
          - integral[..., r + size, c] + integral[..., r, c])


def _draw_centres(candidates: list[np.ndarray], counts: np.ndarray, rng) -> np.ndarray:
  """Flat pixel indices: counts[c] draws with replacement from candidates[c], in class order."""
  draws = [rng.choice(cands, size=n) for cands, n in zip(candidates, counts) if n > 0]
  return np.concatenate(draws) if draws else np.zeros(0, np.int64)


def _blocks_attempt(gt, candidates, n_train_blocks, n_val_blocks, rng, params: BlocksParams):
  height, width = gt.shape
  bs, p, half = params.block, params.patch, params.block // 2
  train_centres = _draw_centres(candidates, n_train_blocks, rng)
  val_centres = _draw_centres(candidates, n_val_blocks, rng)

  train_map = np.zeros_like(gt)
  leaked_map = np.zeros_like(gt)
  train_corners = np.stack(np.divmod(train_centres, width), axis=1) - half  # (n, 2) row0, col0
  block_labels = np.zeros((len(train_corners), bs, bs), gt.dtype)  # each block's own train labels
  for b, (r0, c0) in enumerate(train_corners):
    block = gt[r0:r0 + bs, c0:c0 + bs]
    kept = block.copy()
    labelled = np.flatnonzero(block)
    if labelled.size > params.k_keep:
      leaked = rng.choice(labelled, size=labelled.size - params.k_keep, replace=False)
      kept.flat[leaked] = 0
    train_map[r0:r0 + bs, c0:c0 + bs] = kept           # later blocks overwrite earlier ones
    leaked_map[r0:r0 + bs, c0:c0 + bs] = block - kept
    block_labels[b] = kept

  # Global alternation over the non-empty windows of all blocks, in block then row-major order.
  offsets = bs - p + 1
  nonempty = (_window_sums(block_labels > 0, p) > 0).reshape(-1)
  kept = nonempty & ((np.cumsum(nonempty) - 1) % 2 == 0)
  block_index, offset_index = np.divmod(np.flatnonzero(kept), offsets * offsets)
  offset = np.stack(np.divmod(offset_index, offsets), axis=1)
  origin = train_corners[block_index] + offset
  train_windows = np.concatenate([origin, origin + p], axis=1).astype(np.int32)
  rows = offset[:, 0, None, None] + np.arange(p)[None, :, None]
  cols = offset[:, 1, None, None] + np.arange(p)[None, None, :]
  window_labels = block_labels[block_index[:, None, None], rows, cols].astype(np.int32)
  train_flips = rng.integers(0, 2, size=len(train_windows), dtype=np.int8)

  remaining = gt.copy()
  for r0, c0 in train_corners:
    remaining[r0:r0 + bs, c0:c0 + bs] = 0
  val_corners = np.stack(np.divmod(val_centres, width), axis=1) - half
  in_val_block = np.zeros_like(gt, dtype=bool)
  for r0, c0 in val_corners:
    in_val_block[r0:r0 + bs, c0:c0 + bs] = True
  val_map = np.where(in_val_block, remaining, 0)
  # Every window of every val block that holds a val pixel (no alternation, no augmentation).
  val_windows = []
  val_sums = _window_sums(val_map > 0, p)
  for r0, c0 in val_corners:
    rows, cols = np.nonzero(val_sums[r0:r0 + offsets, c0:c0 + offsets])
    val_windows.append(np.stack([r0 + rows, c0 + cols, r0 + rows + p, c0 + cols + p], axis=1))
  val_windows = np.concatenate(val_windows or [np.zeros((0, 4))]).astype(np.int32)

  remaining[val_map > 0] = 0
  tiled_h, tiled_w = height - height % p, width - width % p
  test_map = np.zeros_like(gt)
  test_map[:tiled_h, :tiled_w] = remaining[:tiled_h, :tiled_w]
  tile_rows, tile_cols = np.nonzero(_window_sums(test_map > 0, p, stride=p))
  tiles = np.stack([tile_rows * p, tile_cols * p], axis=1)
  test_tiles = np.concatenate([tiles, tiles + p], axis=1).astype(np.int32)
  split = Split(train_map, leaked_map, val_map, test_map, train_windows, val_windows, test_tiles,
                train_flips, window_labels, info={})
  untested = int(np.count_nonzero(remaining) - np.count_nonzero(test_map))
  return split, untested


def _distance(total: int, bounds: tuple[int, int]) -> int:
  return max(0, bounds[0] - total, total - bounds[1])


def _blocks_setup(gt, num_classes, params: BlocksParams):
  """(pixels per class, train blocks per class, val blocks per class, candidate centres per
  class) of a `blocks` split; a scene or class the blocks cannot fit is a SplitError."""
  height, width = gt.shape
  bs = params.block
  if not 0 < params.patch <= bs:
    raise SplitError(f"split.patch ({params.patch}) must be between 1 and split.block ({bs}).")
  if height < bs or width < bs:
    raise SplitError(f"Scene is {height}x{width} pixels, smaller than one {bs}x{bs} block: "
                     "use a smaller split.block or the `pixels` protocol.")
  counts = np.bincount(gt.ravel(), minlength=num_classes + 1)[1:]
  n_train_blocks = np.ceil(counts * params.pixel_ratio / params.k_keep).astype(int)
  n_val_blocks = np.ceil(counts * params.val_ratio / params.k_keep).astype(int)
  # A centre's block [r - bs//2, r - bs//2 + bs) must lie fully inside the scene.
  interior = np.zeros_like(gt, dtype=bool)
  interior[bs // 2:height - bs + bs // 2 + 1, bs // 2:width - bs + bs // 2 + 1] = True
  candidates = [np.flatnonzero(interior & (gt == c)) for c in range(1, num_classes + 1)]
  for c, cands in enumerate(candidates):
    if counts[c] > 0 and cands.size == 0:
      raise SplitError(f"Class {c + 1} has no pixel far enough from the border for a {bs}x{bs} "
                       "block to fit; use a smaller split.block or the `pixels` protocol.")
  return counts, n_train_blocks, n_val_blocks, candidates


def calibrate_blocks(gt, num_classes: int, params: BlocksParams, train_fraction: float,
                     val_fraction: float, *, rounds: int, draws: int) -> tuple[float, float]:
  """(pixel_ratio, val_ratio) whose `blocks` draws hold on average `train_fraction` and
  `val_fraction` of the labelled pixels, for a scene whose settings were never calibrated (a
  user's own), starting from params' ratios. Each of `rounds` rounds scales both ratios by
  target / measured over `draws` attempts of a fixed Generator (seed 0): deterministic, and
  independent of the partitions drawn later."""
  gt = np.asarray(gt, np.int32)
  labelled = np.count_nonzero(gt)
  pixel_ratio, val_ratio = params.pixel_ratio, params.val_ratio
  for _ in range(rounds):
    trial = dataclasses.replace(params, pixel_ratio=pixel_ratio, val_ratio=val_ratio)
    _, n_train, n_val, candidates = _blocks_setup(gt, num_classes, trial)
    rng = np.random.default_rng(0)
    measured = np.mean([[np.count_nonzero(split.train), np.count_nonzero(split.val)] for split in
                        (_blocks_attempt(gt, candidates, n_train, n_val, rng, trial)[0]
                         for _ in range(draws))], axis=0) / labelled
    pixel_ratio = float(np.clip(pixel_ratio * train_fraction / max(measured[0], 1e-6), 1e-4, 0.99))
    val_ratio = float(np.clip(val_ratio * val_fraction / max(measured[1], 1e-6), 1e-4, 0.99))
  return round(pixel_ratio, 4), round(val_ratio, 4)


def _blocks_split(gt, num_classes, rng, params: BlocksParams) -> Split:
  lo, hi = params.accept
  counts, n_train_blocks, n_val_blocks, candidates = _blocks_setup(gt, num_classes, params)
  best = None
  for attempt in range(1, params.max_attempts + 1):
    split, untested = _blocks_attempt(gt, candidates, n_train_blocks, n_val_blocks, rng, params)
    train_total = int(np.count_nonzero(split.train))
    val_total = int(np.count_nonzero(split.val))
    missing = [c + 1 for c in range(num_classes) if counts[c] > 0 and
               not np.any(split.train == c + 1)]
    distance = _distance(train_total, (lo, hi)) + _distance(val_total, (lo, hi))
    if distance == 0 and not missing:
      split.info.update(attempts=attempt, untested_border_pixels=untested,
                        train_blocks=int(n_train_blocks.sum()), val_blocks=int(n_val_blocks.sum()))
      return split
    if best is None or distance < best[0]:
      best = (distance, attempt, train_total, val_total, missing)
  _, attempt, train_total, val_total, missing = best
  raise SplitError(
      f"No `blocks` split met the accept bounds [{lo}, {hi}] on both the train and the val pixel "
      f"totals (with every class in train) in {params.max_attempts} attempts. Closest: attempt "
      f"{attempt} with train {train_total}, val {val_total}"
      + (f", classes missing from train {missing}" if missing else "")
      + ". Adjust split.pixel_ratio / split.val_ratio or split.accept, or raise "
      "split.max_attempts. Nothing was saved.")


# ----------------------------------------------------------------------------- pixels protocol


def patches_around(flat_indices: np.ndarray, shape, patch: int) -> np.ndarray:
  """(N, 4) int32 windows of side `patch` around pixels (centre at (patch-1)//2), clipped."""
  rows, cols = np.divmod(flat_indices, shape[1])
  r0, c0 = rows - (patch - 1) // 2, cols - (patch - 1) // 2
  windows = np.stack([r0, c0, r0 + patch, c0 + patch], axis=1)
  limits = np.array([shape[0], shape[1], shape[0], shape[1]])
  return np.clip(windows, 0, limits).astype(np.int32)


def _pixels_split(gt, num_classes, rng, params: PixelsParams) -> Split:
  if (params.per_class is None) == (params.fraction is None):
    raise SplitError("The `pixels` protocol needs exactly one of split.per_class (a count) and "
                     f"split.fraction (0..1); got per_class={params.per_class}, "
                     f"fraction={params.fraction}.")
  if params.fraction is not None and not 0 < params.fraction < 1:
    raise SplitError(f"split.fraction must lie in (0, 1), got {params.fraction}.")
  maps = {name: np.zeros_like(gt) for name in ("train", "val", "test")}
  capped = []
  for c in range(1, num_classes + 1):
    pixels = rng.permutation(np.flatnonzero(gt == c))
    n = pixels.size
    if n == 0:
      continue
    want = params.per_class if params.per_class is not None else max(1, round(params.fraction * n))
    n_train = min(want, n // 2) if n > 1 else 1
    n_val = min(params.val_per_class, (n - n_train) // 2)
    if n_train < want or n_val < params.val_per_class:
      capped.append(c)
    for name, chosen in (("train", pixels[:n_train]), ("val", pixels[n_train:n_train + n_val]),
                         ("test", pixels[n_train + n_val:])):
      maps[name].flat[chosen] = c
  split = split_from_maps(maps["train"], maps["val"], maps["test"], params.patch)
  split.info["capped_classes"] = capped
  return split


def split_from_maps(train: np.ndarray, val: np.ndarray, test: np.ndarray, patch: int) -> Split:
  """A pixel-centred split of given (H, W) train / val / test class maps: each set's windows are
  the patch x patch neighbourhoods of its pixels (row-major order), nothing leaked."""
  windows = {name: patches_around(np.flatnonzero(labels), labels.shape, patch)
             for name, labels in (("train", train), ("val", val), ("test", test))}
  return Split(train, np.zeros_like(train), val, test, windows["train"], windows["val"],
               windows["test"], np.full(len(windows["train"]), -1, np.int8),
               map_window_labels(train, windows["train"], patch), info={})


def window_origins(windows: np.ndarray, patch: int) -> np.ndarray:
  """(N, 2) top-left corners of p x p windows from split windows (N, 4) half-open.

  A pixel-centred window clipped at the top / left edge started before row / col 0; its true
  origin is row1 - p (negative).
  """
  windows = np.asarray(windows, np.int64).reshape(-1, 4)
  r0, c0, r1, c1 = windows.T
  rows = np.where((r1 - r0 < patch) & (r0 == 0), r1 - patch, r0)
  cols = np.where((c1 - c0 < patch) & (c0 == 0), c1 - patch, c0)
  return np.stack([rows, cols], axis=1).astype(np.int32)


def map_window_labels(label_map: np.ndarray, windows: np.ndarray, patch: int) -> np.ndarray:
  """(N, p, p) int32: `label_map` (H, W) inside each p x p window (0 outside the scene) -- the
  final-map rule, where one map decides every window's labels."""
  padded = np.pad(label_map, patch)
  origins = window_origins(windows, patch) + patch
  rows = origins[:, 0, None, None] + np.arange(patch)[None, :, None]
  cols = origins[:, 1, None, None] + np.arange(patch)[None, None, :]
  return padded[rows, cols].astype(np.int32)


def params_from_config(split_config) -> tuple[str, object]:
  """(protocol, params) from a config's `split` section (see configs/common.py)."""
  protocol = split_config.protocol
  if protocol == "blocks":
    return protocol, BlocksParams(
        block=split_config.block, patch=split_config.patch, pixel_ratio=split_config.pixel_ratio,
        val_ratio=split_config.val_ratio, k_keep=split_config.k_keep,
        accept=None if split_config.accept is None else tuple(split_config.accept),
        max_attempts=split_config.max_attempts)
  if protocol == "pixels":
    return protocol, PixelsParams(
        patch=split_config.patch, per_class=split_config.per_class,
        fraction=split_config.fraction, val_per_class=split_config.val_per_class)
  raise SplitError(f"Unknown split protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}.")
