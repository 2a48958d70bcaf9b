"""train_and_evaluate(config, workdir): one run, resumable, from split to results.json.

Work directory (DESIGN.md §3): config.json, split.npz / split.json / split.png, metrics.jsonl (one
object per epoch), checkpoints/{latest,best}, map.npy, map.png, results.json. Starting again in
the same workdir resumes from the latest checkpoint (the epoch order comes from (seed, epoch), so a
resumed run ends exactly as an uninterrupted one). A finished workdir is never overwritten.
"""

from __future__ import annotations

import json
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from hsi_jax import checkpoint, fileutil, parallel
from hsi_jax.data import io, split_files
from hsi_jax.evaluate import metrics as metrics_lib
from hsi_jax.evaluate import plots
from hsi_jax.models import baselines
from hsi_jax.train import state as state_lib
from hsi_jax.train import progress, tasks


class WorkdirError(RuntimeError):
  """The work directory holds a finished run, or a run of another configuration."""


def _config_dict(config) -> dict:
  return json.loads(config.to_json_best_effort(sort_keys=True))


def prepare_workdir(config, workdir: pathlib.Path) -> None:
  """Refuses a finished workdir or one made with another config; writes config.json."""
  if (workdir / "results.json").exists():
    raise WorkdirError(f"{workdir} holds a finished run (results.json exists); it is not "
                       "overwritten. Use a new --workdir, or delete that one to run again.")
  if not check_same_config(config, workdir):
    fileutil.write_json(workdir / "config.json", _config_dict(config))


def check_same_config(config, workdir: pathlib.Path) -> bool:
  """True when workdir/config.json exists and equals `config`; False when there is none.
  A different saved config is a WorkdirError naming the sections that differ."""
  saved_path = pathlib.Path(workdir) / "config.json"
  if not saved_path.exists():
    return False
  resolved, saved = _config_dict(config), json.loads(saved_path.read_text())
  if saved != resolved:
    changed = sorted(k for k in set(saved) | set(resolved) if saved.get(k) != resolved.get(k))
    raise WorkdirError(f"{workdir} holds a run of a different config (sections differing: "
                       f"{', '.join(changed)}). Use a new --workdir to run this config.")
  return True


def save_or_check_split(config, workdir: pathlib.Path, scene: io.SceneData):
  """The config's split; saved into the workdir, or checked against the one saved there."""
  split, _, _ = split_files.split_from_config(config, labels=scene)
  existing = workdir / "split.npz"
  if existing.exists():
    if split_files.load_split(existing).content_hash() != split.content_hash():
      raise WorkdirError(f"{existing} differs from the split this config makes now; use a new "
                         "--workdir.")
  else:
    split_files.save_split(workdir, split, scene.gt, scene.class_names)
  return split


def _loop_state(epoch=0, best_val=-1.0, best_epoch=-1, train_seconds=0.0):
  """Host-side progress, checkpointed with the train state (next epoch to run, best so far)."""
  return dict(epoch=np.asarray(epoch, np.int64), best_val=np.asarray(best_val, np.float64),
              best_epoch=np.asarray(best_epoch, np.int64),
              train_seconds=np.asarray(train_seconds, np.float64))


def keep_metrics_before(path: pathlib.Path, epoch: int) -> None:
  """On resume, drop metrics.jsonl lines of epochs after the restored checkpoint."""
  if path.exists():
    lines = [l for l in path.read_text().splitlines() if l and json.loads(l)["epoch"] < epoch]
    with fileutil.atomic_path(path) as tmp:
      tmp.write_text("".join(l + "\n" for l in lines))


def append_metrics(path: pathlib.Path, record: dict) -> None:
  """One JSON line per epoch (round) in metrics.jsonl (written by process 0)."""
  if not fileutil.is_writer():
    return
  with open(path, "a") as file:
    file.write(json.dumps(record) + "\n")


def say(message: str) -> None:
  """A line for the user (process 0 only), flushed at once."""
  if fileutil.is_writer():
    print(message, flush=True)


def scene_line(config, scene: io.SceneData) -> str:
  labelled = int(np.count_nonzero(scene.gt))
  low, high = float(scene.cube.min()), float(scene.cube.max())
  return (f"scene {config.scene}: {scene.gt.shape[0]}x{scene.gt.shape[1]} pixels, "
          f"{scene.cube.shape[-1]} bands (values {low:g}..{high:g}), {scene.num_classes} classes, "
          f"{labelled:,} labelled pixels")


def split_line(config, split) -> str:
  totals = {name: int(np.count_nonzero(getattr(split, name))) for name in
            ("train", "leaked", "val", "test")}
  attempts = split.info.get("attempts")
  return (f"split {config.split.protocol}, partition {config.partition}: train {totals['train']:,}"
          f" / leaked {totals['leaked']:,} / val {totals['val']:,} / test {totals['test']:,} px; "
          f"windows: {len(split.train_windows):,} train, {len(split.val_windows):,} val, "
          f"{len(split.test_tiles):,} test" + (f"; accepted on attempt {attempts}" if attempts else ""))


def _progress(epoch, epochs, loss, val_acc, loop, seconds_per_epoch):
  eta = seconds_per_epoch * (epochs - epoch - 1)
  print(f"epoch {epoch + 1:3d}/{epochs} loss {loss:.5f} val_acc {val_acc:.4f} "
        f"(best {float(loop['best_val']):.4f} @ {int(loop['best_epoch']) + 1}) "
        f"{seconds_per_epoch:.1f} s/epoch, ETA <= {eta / 60:.1f} min", flush=True)


def run(config, workdir) -> dict:
  """launch/train.py's run: one seed (train_and_evaluate) or config.num_seeds (seeds.py)."""
  if config.num_seeds > 1:
    from hsi_jax.train import seeds  # noqa: PLC0415  (seeds builds on this module)
    return seeds.train_seeds(config, workdir)
  return train_and_evaluate(config, workdir)


def summary_line(results: dict) -> str:
  """One line for the terminal: a run's OA / AA / kappa, or their mean +- std over seeds."""
  if "runs" in results:
    mean, std = results["mean"], results["std"]
    return (f"{len(results['runs'])} runs: OA {100 * mean['oa']:.2f} +- {100 * std['oa']:.2f} %  "
            f"AA {100 * mean['aa']:.2f} +- {100 * std['aa']:.2f} %  kappa {mean['kappa']:.4f} +- "
            f"{std['kappa']:.4f} ({results['train_seconds']:.0f} s training)")
  return (f"OA {100 * results['oa']:.2f} %  AA {100 * results['aa']:.2f} %  kappa "
          f"{results['kappa']:.4f}  ({results['num_test_pixels']} test pixels, "
          f"{results['train_seconds']:.0f} s training)")


def train_and_evaluate(config, workdir) -> dict:
  """Trains config's model on its split, evaluates the best checkpoint on the test pixels.
  KNN / SVM (models/baselines.py) are fitted instead and write the same files."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  prepare_workdir(config, workdir)
  say(f"loading scene {config.scene}...")
  scene = io.load_scene(config.scene, config.data.root or None)
  say(scene_line(config, scene))
  split = save_or_check_split(config, workdir, scene)
  say(split_line(config, split))
  if config.model.name in baselines.NAMES:
    start = time.perf_counter()
    prediction, fit_info = baselines.fit_predict(config, scene, split)
    results = evaluate(config, workdir, split, scene, prediction)
    results.update(fit_info, train_seconds=round(time.perf_counter() - start, 2))
    fileutil.write_json(workdir / "results.json", results)
    return results

  mesh = parallel.make_mesh()
  task = tasks.make_task(config, scene, split, mesh)
  state = task.init_state()
  num_params = state_lib.count_params(state)
  say(f"model {config.model.name}: {num_params:,} parameters (with BatchNorm statistics)")
  checkpoints = checkpoint.Checkpoints(workdir)
  loop = _loop_state()
  metrics_path = workdir / "metrics.jsonl"
  if checkpoints.latest_epoch("latest") is not None:
    restored = checkpoints.restore("latest", {"state": state, "loop": loop})
    state, loop = parallel.replicate(restored["state"], mesh), restored["loop"]
    print(f"Resuming {workdir} at epoch {int(loop['epoch']) + 1}.", flush=True)
  keep_metrics_before(metrics_path, int(loop["epoch"]))

  start = time.perf_counter()
  say(f"compiling the training epoch ({task.steps_per_round} steps of {task.batch_size})...")
  task.compile_round(state)
  say(f"compiled in {time.perf_counter() - start:.1f} s")
  curves = progress.Curves(workdir, f"{config.scene} {config.model.name}, {config.split.protocol} "
                           f"partition {config.partition}", progress.lr_drop_epochs(config.train))
  epochs, patience = task.num_rounds, config.train.patience
  for epoch in range(int(loop["epoch"]), epochs):
    if int(loop["best_epoch"]) >= 0 and epoch - int(loop["best_epoch"]) > patience:
      break
    start = time.perf_counter()
    task.step_progress.begin(f"epoch {epoch + 1}/{epochs}", task.steps_per_round, task.batch_size)
    state, round_metrics = task.train_round(state, epoch)
    loss = float(round_metrics["loss"])
    task.step_progress.end()
    if not math.isfinite(loss):
      raise FloatingPointError(
          f"Training loss became {loss} in epoch {epoch + 1}; stopped. The latest checkpoint holds "
          f"epoch {int(loop['epoch'])}. Lower train.learning_rate or set "
          "config.data.standardize=True.")
    correct, counted = task.val_accuracy(state)
    val_acc = correct / max(counted, 1)
    seconds = time.perf_counter() - start
    improved = val_acc > float(loop["best_val"])
    loop = _loop_state(epoch + 1, val_acc if improved else loop["best_val"],
                       epoch if improved else loop["best_epoch"],
                       float(loop["train_seconds"]) + seconds)
    if improved:
      checkpoints.save("best", epoch, {"state": state})
    if (epoch + 1) % config.train.checkpoint_every == 0:
      checkpoints.save("latest", epoch, {"state": state, "loop": loop})
    append_metrics(metrics_path, dict(epoch=epoch, step=(epoch + 1) * task.steps_per_round,
                                      loss=loss, val_accuracy=val_acc, val_pixels=counted,
                                      seconds=round(seconds, 3)))
    _progress(epoch, epochs, loss, val_acc, loop, float(loop["train_seconds"]) / (epoch + 1))
    curves.update()
    if epoch - int(loop["best_epoch"]) >= patience:
      say(f"Early stopping: no val improvement for {patience} epochs.")
      break
  curves.update(force=True)

  best = checkpoints.restore("best", {"state": state})["state"]
  checkpoints.close()
  results = evaluate(config, workdir, split, scene, task.predict_map(best))
  results.update(num_params=num_params, train_seconds=round(float(loop["train_seconds"]), 2),
                 best_epoch=int(loop["best_epoch"]) + 1, epochs_run=int(loop["epoch"]),
                 best_val_accuracy=float(loop["best_val"]), device=jax.devices()[0].device_kind,
                 num_devices=jax.device_count())
  fileutil.write_json(workdir / "results.json", results)
  return results


def evaluate(config, workdir, split, scene, prediction: np.ndarray) -> dict:
  """Writes map.npy / map.png (prediction (H, W): a class id for every pixel); metrics at the
  split's test pixels, read from the map."""
  with fileutil.atomic_path(workdir / "map.npy") as tmp:
    with open(tmp, "wb") as file:
      np.save(file, prediction)
  test = split.test > 0
  confusion = np.asarray(metrics_lib.confusion_matrix(
      jnp.asarray(split.test[test]), jnp.asarray(prediction[test]), scene.num_classes))
  results = dict(scene=config.scene, model=config.model.name, protocol=config.split.protocol,
                 seed=config.seed, partition=config.partition, split_hash=split.content_hash(),
                 class_names=list(scene.class_names), **metrics_lib.summarize(confusion))
  plots.plot_map(workdir / "map.png", prediction, scene.gt,
                 f"{config.scene} {config.model.name}, {config.split.protocol} partition "
                 f"{config.partition}: OA {100 * results['oa']:.2f} %")
  return results
