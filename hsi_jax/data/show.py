"""What a user looks at before choosing settings: a scene's summary and its picture (scene.png)."""

from __future__ import annotations

import os
import pathlib

import numpy as np

from hsi_jax import plots
from hsi_jax.data import custom, io, split_sources


def summary(scene: io.SceneData, title: str) -> str:
  """Shape, bands, value range and type, and a line per class: its id, the id in the file, its
  name and its labelled pixels."""
  cube, gt = scene.cube, scene.gt
  counts = np.bincount(gt.ravel(), minlength=scene.num_classes + 1)
  raw_ids = scene.class_ids
  lines = [f"{title}: {gt.shape[0]}x{gt.shape[1]} pixels, {cube.shape[-1]} bands, values "
           f"{cube.min():g}..{cube.max():g} (mean {cube.mean():g}), {counts[1:].sum():,} of "
           f"{gt.size:,} pixels labelled, {scene.num_classes} classes",
           f"{'class':>5} {'id in file':>10}  {'name':<32}{'pixels':>8}"]
  lines += [f"{c:>5} {raw_ids[c - 1]:>10}  {scene.class_names[c - 1][:31]:<32}{counts[c]:>8,}"
            for c in range(1, scene.num_classes + 1)]
  for warning in scene.warnings:
    lines.append(f"warning: {warning}")
  return "\n".join(lines)


def show_scene(config, out_dir: os.PathLike) -> str:
  """Loads the config's scene, writes out_dir/scene.png and returns the summary, with what was
  derived from a custom scene's files and the `blocks` values calibrated for the scene."""
  scene_info = io.scene_of(config)
  scene = io.load_config_scene(config)
  out_dir = pathlib.Path(out_dir).expanduser()
  out_dir.mkdir(parents=True, exist_ok=True)
  plots.plot_scene(out_dir / "scene.png", scene.cube, scene.gt, scene_info.rgb_bands,
                   scene.class_names, scene_info.title)
  return "\n".join([summary(scene, scene_info.title)] + custom.derived_lines(config)
                   + split_sources.calibration_lines(config, scene))
