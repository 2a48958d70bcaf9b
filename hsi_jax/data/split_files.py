"""A split on disk: split.npz (the arrays), split.json (`summary`: its info, per-class counts,
content hash) and split.png, written by save_split and read by load_split. Where a split comes
from: split_sources.py; its terminal tables and statistics: split_tables.py."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from hsi_jax import fileutil, plots
from hsi_jax.data import io, splits


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
    missing = [name for name in splits.ARRAY_NAMES if name not in data.files]
    if missing:
      raise splits.SplitError(f"{path} is not a split.npz: arrays {missing} are missing "
                              f"(present: {data.files}).")
    arrays = {name: data[name] for name in data.files}
  info_path = path.with_suffix(".json")
  info = {}
  if info_path.is_file():
    info = json.loads(info_path.read_text())
  return splits.Split(info=info, **{k: v for k, v in arrays.items() if k in splits.ARRAY_NAMES})
