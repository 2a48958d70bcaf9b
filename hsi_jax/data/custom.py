"""A user's own scene: what a run derives from its files, said and recorded.

configs/custom.py records only what the user chose: the files and their keys, the class-name file,
the split's geometry and calibration target, the model. The rest is derived when it is used:
the size, band count, classes (raw ids, numbered 1..C in increasing order), class names and RGB
bands when the scene is read (io.custom_scene); the `blocks` pixel_ratio / val_ratio / accept
bounds when the split is made (split_sources.calibrated_params, recorded in split.json under
`calibrated`); the DA-IMRN band schedule when the network is built (models/da_imrn.py,
band_schedule; config.model.band_strides = None). `derived_lines` says what was derived from the
files and `scene_record` is what split.json keeps of it.
"""

from __future__ import annotations

from hsi_jax.data import io, scenes


def scene_record(config) -> dict:
  """What was derived from a custom scene's files (io.custom_scene), as split.json records it
  under `custom_scene`; {} for a registered scene."""
  if config.scene != scenes.CUSTOM:
    return {}
  scene = io.scene_of(config)
  return dict(cube=scene.cube.filename, cube_key=scene.cube.key, gt=scene.gt.filename,
              gt_key=scene.gt.key, shape=list(scene.shape), num_bands=scene.num_bands,
              class_ids=list(scene.class_ids), class_names=list(scene.class_names),
              rgb_bands=list(scene.rgb_bands))


def derived_lines(config) -> list[str]:
  """What was derived from a custom scene's files, for the run's and show_scene's output (the
  split's calibration is said with the split: split_sources.source_lines); [] for a registered
  scene."""
  if config.scene != scenes.CUSTOM:
    return []
  scene = io.scene_of(config)
  ids = ", ".join(map(str, scene.class_ids))
  lines = [f"custom scene {scene.gt.filename} [{scene.gt.key}] + {scene.cube.filename} "
           f"[{scene.cube.key}]: {scene.shape[0]}x{scene.shape[1]} pixels, {scene.num_bands} "
           f"bands; classes with ids {ids} in the file are 1..{len(scene.class_ids)} here; RGB "
           f"bands {tuple(scene.rgb_bands)}"]
  if config.model.name == "da_imrn" and config.model.get("band_strides") is None:
    lines.append(f"DA-IMRN band schedule: derived from the {scene.num_bands} bands when the "
                 "network is built (models/da_imrn.py, band_schedule)")
  return lines
