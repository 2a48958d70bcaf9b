"""A user's own scene: what configs/custom.py derives from the files, so that no scene needs an
entry in the registry (scenes.py).

`describe(cube, gt, ...)` reads the ground truth and the cube's header (not the cube) and returns
the scene's values as the config holds them: size, band count, the classes present (raw ids, which
the run maps to 1..C in increasing order) with their names, and the bands of an RGB composite.
`blocks_settings` calibrates the `blocks` split for the scene's size and classes.
"""

from __future__ import annotations

import pathlib

import numpy as np

from hsi_jax.data import io, scenes, splits

DEFAULT_FRACTION = 0.11  # train and val shares of the labelled pixels: near Indian Pines' 11-12 %
DEFAULT_TOLERANCE = 0.01  # accept bounds: fraction +- this, of the labelled pixels


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
    raise io.DataError(f"{file} names {len(names)} classes, the ground truth holds {len(raw_ids)} "
                       f"(ids {list(raw_ids)}): give one name a line for each, in that order.")
  return tuple(names)


def describe(cube: str, gt: str, cube_key: str = "", gt_key: str = "", classes: str = "") -> dict:
  """The scene's values (module docstring) plus the ground truth itself (`labels`, classes
  1..C) for the split settings. Errors name the file and the fix."""
  if not cube or not gt:
    raise io.DataError("configs/custom.py needs both files: configs/custom.py:cube=PATH,gt=PATH.")
  cube_path, gt_path = (pathlib.Path(p).expanduser().resolve() for p in (cube, gt))
  for option, path in (("cube", cube_path), ("gt", gt_path)):
    if not path.is_file():
      raise FileNotFoundError(f"no file at {path} (configs/custom.py:{option}=...).")
  gt_key = io.pick_key(io.array_shapes(gt_path), gt_key, gt_path, "gt_key")
  labels = io.check_ground_truth(io.read_arrays(gt_path, [gt_key])[gt_key], str(gt_path))
  shapes = io.array_shapes(cube_path)
  cube_key = io.pick_key(shapes, cube_key, cube_path, "cube_key")
  cube_shape = shapes[cube_key]
  io.check_cube_shape(cube_shape, labels.shape, None, f"{cube_path} (ground truth {gt_path})")
  raw_ids = tuple(int(i) for i in np.unique(labels[labels > 0]))
  return dict(cube=str(cube_path), gt=str(gt_path), cube_key=cube_key, gt_key=gt_key,
              shape=labels.shape, num_bands=int(cube_shape[2]), class_ids=raw_ids,
              class_names=class_names_from(classes, raw_ids),
              rgb_bands=scenes.display_bands(int(cube_shape[2])),
              labels=scenes.remap_classes(labels, raw_ids))


def blocks_settings(labels: np.ndarray, *, block: int, patch: int, k_keep: int,
                    fraction: float = DEFAULT_FRACTION,
                    tolerance: float = DEFAULT_TOLERANCE) -> dict:
  """The `blocks` split's pixel_ratio, val_ratio and accept bounds for a scene: train and val
  each about `fraction` of the labelled pixels, accepted within +- `tolerance` of them."""
  num_classes = int(labels.max())
  labelled = int(np.count_nonzero(labels))
  start = splits.BlocksParams(block=block, patch=patch, pixel_ratio=0.15, val_ratio=0.06,
                              k_keep=k_keep, accept=(0, labelled))  # Indian Pines' ratios
  pixel_ratio, val_ratio = splits.calibrate_blocks(labels, num_classes, start, fraction, fraction)
  accept = (int(np.floor(labelled * (fraction - tolerance))),
            int(np.ceil(labelled * (fraction + tolerance))))
  return dict(pixel_ratio=pixel_ratio, val_ratio=val_ratio, accept=accept)


def derived_lines(config) -> list[str]:
  """What configs/custom.py derived from the files, for the run's and show_scene's output."""
  if config.scene != scenes.CUSTOM:
    return []
  data, split = config.data, config.split
  ids = ", ".join(map(str, data.class_ids))
  lines = [f"custom scene {data.gt} [{data.gt_key}] + {data.cube} [{data.cube_key}]: classes with "
           f"ids {ids} in the file are 1..{len(data.class_ids)} here; RGB bands "
           f"{tuple(data.rgb_bands)}"]
  if config.model.get("band_strides") is not None:
    lines.append(f"DA-IMRN band schedule for {data.num_bands} bands: strides "
                 f"{tuple(config.model.band_strides)}, valid kernels "
                 f"{tuple(config.model.valid_kernels)}")
  if split.protocol == "blocks" and not split.file:
    lines.append(f"blocks split calibrated for this scene: block {split.block}, patch "
                 f"{split.patch}, k_keep {split.k_keep}, pixel_ratio {split.pixel_ratio}, "
                 f"val_ratio {split.val_ratio}, train and val accepted in {list(split.accept)} px")
  return lines
