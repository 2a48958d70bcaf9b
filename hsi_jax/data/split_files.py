"""A split on disk (split.npz, split.json, split.png) and a split made from a config."""

from __future__ import annotations

import json
import os
import pathlib
import time
from typing import Optional

import numpy as np

from hsi_jax import fileutil
from hsi_jax.data import io, splits
from hsi_jax import plots


def split_from_config(config, partition: Optional[int] = None,
                      labels: Optional[io.SceneData] = None):
  """(split, labels, seconds): the config's scene ground truth split as partition `partition`
  (default config.partition; partition k is drawn with seed k).

  Needs only the ground truth (read from disk unless `labels` is given), so PU / SV splits work
  without their cubes.
  """
  labels = labels or io.load_ground_truth(config.scene, config.data.root or None)
  protocol, params = splits.params_from_config(config.split)
  partition = config.partition if partition is None else partition
  start = time.perf_counter()
  split = splits.make_split(labels.gt, labels.num_classes, partition, protocol, params)
  seconds = time.perf_counter() - start
  split.info.update(scene=config.scene, seconds=round(seconds, 4))
  return split, labels, seconds


def summary(split: splits.Split, class_names) -> dict:
  """What split.json holds: the protocol, its parameters, per-class counts and the content hash."""
  counts = split.class_counts(len(class_names))
  classes = [dict(id=c + 1, name=name, **{k: v[c] for k, v in counts.items()})
             for c, name in enumerate(class_names)]
  return dict(split.info, content_hash=split.content_hash(), classes=classes,
              totals={k: int(sum(v)) for k, v in counts.items()},
              windows={name: len(getattr(split, name)) for name in splits.WINDOW_NAMES})


def save_split(out_dir: os.PathLike, split: splits.Split, gt: np.ndarray, class_names) -> dict:
  """Writes split.npz, split.json and split.png into out_dir (each atomically); returns the json."""
  out_dir = pathlib.Path(out_dir)
  with fileutil.atomic_path(out_dir / "split.npz") as tmp:
    with open(tmp, "wb") as file:
      np.savez_compressed(file, **split.arrays())
  info = summary(split, class_names)
  fileutil.write_json(out_dir / "split.json", info)
  title = (f"{info.get('scene', '')} {info['protocol']} split, partition {info['partition']}\n"
           f"hash {info['content_hash'][:12]}")
  plots.plot_split(out_dir / "split.png", split.arrays(), gt, title)
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
    totals.append(summary(split, labels.class_names)["totals"])
    seconds.append(elapsed)
  if not totals:
    return f"| {config.scene} | no seed of {len(list(seeds))} accepted |"
  mean = {k: np.mean([t[k] for t in totals]) for k in totals[0]}
  within10 = np.mean(np.array(attempts) <= 10)
  return (f"| {config.scene} | {config.split.protocol} | {config.split.pixel_ratio} / "
          f"{config.split.val_ratio} | {attempts} | {failures} | {100 * within10:.0f} % | "
          f"{mean['train']:.0f} / {mean['leaked']:.0f} / {mean['val']:.0f} / {mean['test']:.0f} | "
          f"{np.mean(seconds):.3f} / {np.max(seconds):.3f} |")
