"""A run's work directory: refusing the wrong one, the split saved or checked, metrics lines, the
map and metrics of a finished run.

Layout (one seed): config.json, split.npz / split.json / split.png, metrics.jsonl (one object per
round: an epoch for DA-IMRN, train.eval_every steps for the pixel models), curves.png,
checkpoints/latest, map.npy, map.png, results.json. With num_seeds = K > 1 each run's files go to
seed<k>/ (K model seeds) or partition<p>/ (K partitions), and the top results.json holds the runs
with their mean and std. A finished workdir is
never overwritten; one of another config is refused.
"""

from __future__ import annotations

import json
import pathlib

import jax.numpy as jnp
import numpy as np

from hsi_jax import errors, fileutil, plots
from hsi_jax.data import io, split_files, splits as splits_lib
from hsi_jax.evaluate import metrics as metrics_lib


class WorkdirError(errors.UserError, RuntimeError):
  """The work directory holds a finished run, or a run of another configuration."""


def config_dict(config) -> dict:
  return json.loads(config.to_json_best_effort(sort_keys=True))


def refuse_finished_or_foreign(config, workdir: pathlib.Path) -> None:
  """A WorkdirError when workdir holds a finished run or a run of another config (writes
  nothing)."""
  if workdir.exists() and not workdir.is_dir():
    raise WorkdirError(f"--workdir={workdir} is a file, not a directory; give a directory "
                       "(new or of a run of this config).")
  if (workdir / "results.json").exists():
    raise WorkdirError(f"{workdir} holds a finished run (results.json exists); it is not "
                       "overwritten. Use a new --workdir, or delete that one to run again.")
  check_same_config(config, workdir)


def prepare(config, workdir: pathlib.Path) -> None:
  """Refuses a finished workdir or one made with another config; writes config.json."""
  refuse_finished_or_foreign(config, workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if not (workdir / "config.json").exists():
    fileutil.write_json(workdir / "config.json", config_dict(config))


# Config leaves that say how a run executes, not what it computes: a resumed run may differ in
# them (and a work directory of a run from before they existed lacks them).
EXECUTION_LEAVES = ("compile_cache",)


def check_same_config(config, workdir: pathlib.Path) -> bool:
  """True when workdir/config.json exists and equals `config`; False when there is none.
  A different saved config is a WorkdirError naming the sections that differ."""
  saved_path = pathlib.Path(workdir) / "config.json"
  if not saved_path.exists():
    return False
  resolved, saved = config_dict(config), json.loads(saved_path.read_text())
  for leaf in EXECUTION_LEAVES:  # where, not what: a rerun may change them
    resolved.pop(leaf, None)
    saved.pop(leaf, None)
  if saved != resolved:
    changed = sorted(k for k in set(saved) | set(resolved) if saved.get(k) != resolved.get(k))
    raise WorkdirError(f"{workdir} holds a run of a different config (sections differing: "
                       f"{', '.join(changed)}). Use a new --workdir to run this config.")
  return True


def run_dirs(workdir: pathlib.Path, configs, seeds_over: str) -> list[pathlib.Path]:
  """Each run's directory: the workdir itself for one run; for K > 1, partition<p>/ for each
  partition p (seeds_over="partitions") or seed<k>/ for the k-th model seed (k = 0..K-1)."""
  if len(configs) == 1:
    return [workdir]
  if seeds_over == "partitions":
    return [workdir / f"partition{c.partition}" for c in configs]
  return [workdir / f"seed{k}" for k in range(len(configs))]


def save_or_check_split(split: splits_lib.Split, run_dir: pathlib.Path,
                        scene: io.SceneData) -> None:
  """Saves a run's split into run_dir, or checks it against the one saved there."""
  existing = run_dir / "split.npz"
  if existing.exists():
    if split_files.load_split(existing).content_hash() != split.content_hash():
      raise WorkdirError(f"{existing} differs from the split this config makes now; use a new "
                         "--workdir.")
  else:
    run_dir.mkdir(parents=True, exist_ok=True)
    split_files.save_split(run_dir, split, scene)


def keep_metrics_before(path: pathlib.Path, round_index: int) -> bool:
  """On resume, drop metrics.jsonl lines of rounds after the restored checkpoint, and a torn last
  line (a kill during its append: that round runs again). -> whether a torn line was dropped. A
  line that does not parse elsewhere is damage: a WorkdirError naming it."""
  if not path.exists():
    return False
  lines = [line for line in path.read_text().splitlines() if line]
  records = []
  for number, line in enumerate(lines, start=1):
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      if number < len(lines):
        raise WorkdirError(f"{path}: line {number} is not JSON; remove that line (or the file: "
                           "the run rewrites it from the checkpoint's rounds onwards).") from None
  torn = len(records) < len(lines)
  with fileutil.atomic_path(path) as tmp:
    tmp.write_text("".join(json.dumps(record) + "\n" for record in records
                           if record["round"] < round_index))
  return torn


def append_metrics(path: pathlib.Path, record: dict) -> None:
  """One JSON line per round in metrics.jsonl (written by process 0)."""
  if not fileutil.is_writer():
    return
  with open(path, "a") as file:
    file.write(json.dumps(record) + "\n")


def evaluate_map(config, run_dir: pathlib.Path, split: splits_lib.Split, scene: io.SceneData,
                 prediction: np.ndarray) -> dict:
  """Writes map.npy / map.png (prediction (H, W): a class id for every pixel) and returns the
  metrics at the split's test pixels, read from the map: the run's part of results.json (which
  the caller writes)."""
  with fileutil.atomic_path(run_dir / "map.npy") as tmp:
    with open(tmp, "wb") as file:
      np.save(file, prediction)
  test = split.test > 0
  confusion = np.asarray(metrics_lib.confusion_matrix(
      jnp.asarray(split.test[test]), jnp.asarray(prediction[test]), scene.num_classes))
  protocol = split.info["protocol"]  # "file" for a user's split file
  results = dict(scene=config.scene, model=config.model.name, protocol=protocol,
                 seed=config.seed, partition=config.partition, split_hash=split.content_hash(),
                 class_names=list(scene.class_names), class_ids=list(scene.class_ids),
                 **metrics_lib.summarize(confusion),
                 warnings=metrics_lib.collapse_warnings(split.test[test], prediction[test]))
  plots.plot_map(run_dir / "map.png", prediction, scene.gt,
                 f"{config.scene} {config.model.name}, {protocol} partition "
                 f"{config.partition}: OA {100 * results['oa']:.2f} %")
  return results
