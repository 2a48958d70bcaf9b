"""A split's tables for the terminal: the per-class table of split.json (format_summary) and a
markdown row of acceptance statistics over many partitions (format_stats)."""

from __future__ import annotations

import numpy as np

from hsi_jax.data import io, split_files, split_sources, splits


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
  """A markdown table row of acceptance statistics over `seeds` (see launch/split_stats.py): the
  ratios used (calibrated ones as split.json records them), attempts per seed, failures, share
  accepted within 10 attempts, mean pixel totals, mean / max seconds per split."""
  labels = io.load_config_labels(config)
  attempts, totals, seconds, failures, params = [], [], [], 0, {}
  for seed in seeds:
    try:
      split, _, elapsed = split_sources.split_from_config(config, seed, labels=labels)
    except splits.SplitError:
      failures += 1
      continue
    attempts.append(split.info.get("attempts", 1))
    totals.append(split_files.summary(split, labels)["totals"])
    seconds.append(elapsed)
    params = split.info.get("params", {})
  if not totals:
    return f"| {config.scene} | no seed of {len(list(seeds))} accepted |"
  mean = {k: np.mean([t[k] for t in totals]) for k in totals[0]}
  within10 = np.mean(np.array(attempts) <= 10)
  return (f"| {config.scene} | {config.split.protocol} | {params.get('pixel_ratio')} / "
          f"{params.get('val_ratio')} | {attempts} | {failures} | {100 * within10:.0f} % | "
          f"{mean['train']:.0f} / {mean['leaked']:.0f} / {mean['val']:.0f} / {mean['test']:.0f} | "
          f"{np.mean(seconds):.3f} / {np.max(seconds):.3f} |")
