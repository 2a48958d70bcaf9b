"""A run's work directory: one run at a time in it (its lock), refusing the wrong one, the inputs
it read checked on a rerun, the split saved or checked, metrics lines, the map and metrics of a
finished run.

Layout (one seed): config.json, split.npz / split.json / split.png, metrics.jsonl (one object per
round: an epoch for DA-IMRN, train.eval_every steps for the pixel models), curves.png,
checkpoints/latest, map.npy, map.png, results.json; inputs.json (the content hash of each of the
user's files the run reads) and .lock (who holds the work directory). With num_seeds = K > 1 each
run's files go to seed<k>/ (K model seeds) or partition<p>/ (K partitions), and the top
results.json holds the runs with their mean and std. A finished workdir is never overwritten; one
of another config is refused.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import pathlib
import socket

import jax.numpy as jnp
import numpy as np

from hsi_jax import config_util, errors, fileutil, plots
from hsi_jax.data import io, split_files, split_sources, splits as splits_lib
from hsi_jax.evaluate import metrics as metrics_lib


class WorkdirError(errors.UserError, RuntimeError):
  """The work directory holds a finished run, or a run of another configuration."""


def config_dict(config) -> dict:
  return json.loads(config.to_json_best_effort(sort_keys=True))


@contextlib.contextmanager
def claim(workdir: pathlib.Path):
  """Holds workdir for one run: creates it (and its parents), takes an exclusive lock on
  workdir/.lock (released by the OS when the process ends, however it ends: a crashed run never
  blocks the next), and removes the temporaries of atomic writes a killed run left. A second run
  is refused with the holder's host, pid and start time. Creating the directory and the lock is
  also the check that it can be written, before the scene is loaded. A run refused (a UserError
  from the block) leaves the directory as it found it: a lock file this call made is removed,
  and so is a directory it made that holds nothing else.
  Only process 0 locks (a lock over a shared filesystem is not reliable across hosts)."""
  if workdir.exists() and not workdir.is_dir():
    raise WorkdirError(f"--workdir={workdir} is a file, not a directory; give a directory "
                       "(new or of a run of this config).")
  if not fileutil.is_writer():
    yield
    return
  created = not workdir.exists()
  lock_path = workdir / ".lock"
  new_lock = not lock_path.exists()
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
  except OSError as error:
    raise errors.FilesystemError(errors.filesystem_message(error, workdir)) from None
  try:
    try:
      fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(descriptor, 4096, 0).decode(errors="replace").strip() or "its holder unknown"
      raise WorkdirError(f"{workdir} is in use by another run ({holder}; lock {lock_path}); wait "
                         "for it to end, or stop it: a run that has died releases the lock by "
                         "itself.") from None
    since = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"pid {os.getpid()} on {socket.gethostname()} since {since}".encode(),
              0)
    for directory in [workdir, *sorted(p for p in workdir.iterdir() if p.is_dir())]:
      fileutil.remove_stale_temporaries(directory)
    try:
      yield
    except errors.UserError:  # refused: the directory is left as it was found
      if new_lock:
        lock_path.unlink()
      raise
  finally:
    os.close(descriptor)
    if created and lock_path.exists() and [p.name for p in workdir.iterdir()] == [".lock"]:
      lock_path.unlink()
    if created and not any(workdir.iterdir()):
      workdir.rmdir()


def refuse_finished_or_foreign(config, workdir: pathlib.Path) -> None:
  """A WorkdirError when workdir holds a finished run or a run of another config (writes
  nothing). Called inside claim(workdir), which refused a workdir that is a file."""
  if (workdir / "results.json").exists():
    raise WorkdirError(f"{workdir} holds a finished run (results.json exists); it is not "
                       "overwritten. Use a new --workdir, or delete that one to run again.")
  check_same_config(config, workdir)


def prepare(config, workdir: pathlib.Path, inputs: dict) -> None:
  """Writes config.json and inputs.json (input_hashes) where there are none (after
  refuse_finished_or_foreign)."""
  workdir.mkdir(parents=True, exist_ok=True)
  if not (workdir / "config.json").exists():
    fileutil.write_json(workdir / "config.json", config_dict(config))
  if not (workdir / "inputs.json").exists():
    fileutil.write_json(workdir / "inputs.json", inputs)


def input_files(configs) -> dict[str, pathlib.Path]:
  """{what: path} of the user's files the runs of `configs` read: a custom scene's cube, ground
  truth and class names, a split file, each partition's split.npz. (A registered scene's files
  are checked against the registry's content hashes whenever they are loaded, data/io.py.)"""
  files = {}
  for config in configs:
    for key in ("cube", "gt", "classes"):
      if config.data.get(key):
        files[f"data.{key}"] = pathlib.Path(config.data[key])
    if config.split.get("file"):
      files["split.file"] = pathlib.Path(config.split.file)
    if config.split.get("npz"):
      path = split_sources.npz_path(config.split.npz, config.partition)
      files["split.npz" + (f" (partition {config.partition})" if "{partition}" in
                           config.split.npz else "")] = path
  return files


def input_hashes(configs) -> dict:
  """{what: {path, bytes, sha256}} of input_files(configs) that exist (a missing one is
  reported where it is read)."""
  hashes = {}
  for name, path in input_files(configs).items():
    if path.is_file():
      hashes[name] = dict(path=str(path), bytes=path.stat().st_size,
                          sha256=fileutil.file_sha256(path))
  return hashes


def check_inputs(workdir: pathlib.Path, inputs: dict) -> None:
  """A WorkdirError when a file the run of workdir read (its inputs.json) holds other bytes now
  (input_hashes): the rerun would go on, or be evaluated, on other data. Writes nothing."""
  saved_path = workdir / "inputs.json"
  if not saved_path.exists():
    return
  saved = json.loads(saved_path.read_text())
  for name, before in saved.items():
    now = inputs.get(name)
    if now is None or now["sha256"] != before["sha256"]:
      change = ("is gone" if now is None else f"holds other data now (sha256 {before['sha256'][:12]}"
                f" when the run began, {now['sha256'][:12]} now)")
      raise WorkdirError(f"{before['path']} ({name}) {change}; the run in {workdir} would go on "
                         "with other data. Put the original file back, or use a new --workdir.")


# Config entries that do not change what a run computes -- how it executes, the comparison table it
# may be a cell of (launch/compare.py): a resumed run may differ in them (and a work directory of a
# run from before they existed lacks them).
EXECUTION_LEAVES = ("compile_cache", "compare")


def check_same_config(config, workdir: pathlib.Path) -> bool:
  """True when workdir/config.json exists and equals `config`; False when there is none.
  A different saved config is a WorkdirError naming the sections that differ."""
  saved_path = pathlib.Path(workdir) / "config.json"
  if not saved_path.exists():
    return False
  resolved = config_dict(config)
  saved = config_util.with_added_leaves(json.loads(saved_path.read_text()))
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
  _save_map(run_dir / "map.npy", prediction)
  test = split.test > 0
  confusion = _test_confusion(split, prediction, scene.num_classes)
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


def evaluate_control(run_dir: pathlib.Path, split: splits_lib.Split, scene: io.SceneData,
                     control_map: np.ndarray) -> dict:
  """Writes control_map.npy (classes at the test pixels from the masked-input control's inputs:
  pixel_inputs.own_window_rows; 0 elsewhere) and returns OA / AA / kappa read from it at the
  split's test pixels."""
  _save_map(run_dir / "control_map.npy", control_map)
  summary = metrics_lib.summarize(_test_confusion(split, control_map, scene.num_classes))
  return {key: summary[key] for key in metrics_lib.SUMMARY_KEYS + ("num_test_pixels",)}


def _save_map(path: pathlib.Path, prediction: np.ndarray) -> None:
  with fileutil.atomic_path(path) as tmp:
    with open(tmp, "wb") as file:
      np.save(file, prediction)


def _test_confusion(split: splits_lib.Split, prediction: np.ndarray, num_classes: int):
  """(C, C) counts of the prediction at the split's test pixels."""
  test = split.test > 0
  return np.asarray(metrics_lib.confusion_matrix(
      jnp.asarray(split.test[test]), jnp.asarray(prediction[test]), num_classes))
