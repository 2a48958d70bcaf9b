"""run(config, workdir): the one run path, from split to results.json, for K >= 1 seeds.

`config.num_seeds = K` runs K seeds: with `config.seeds_over = "init"` the model seeds seed,
seed+1, ... over one partition; with `"partitions"` the partitions partition, partition+1, ...
(each with model seed `seed`). A single run is K = 1. Every neural model trains its K seeds as one
vmapped program (families/); seed k computes the single run of its config (same keys, same example
order, same early stopping) alongside the others. KNN / SVM fit their seeds one after another.

Keys: parameters from fold_in(seed key, 0); round r's example order (and dropout) from
fold_in(fold_in(seed key, 1), r). A round is an epoch for DA-IMRN and train.eval_every steps for
the pixel models; validation, early stopping (`train.patience` rounds without a better validation
accuracy) and checkpoints happen between rounds, per seed: a stopped seed's best state is frozen
while the others go on.

Devices: the mesh is (seeds, data). The seeds axis takes `config.mesh_seeds` devices (0 = the
largest divisor of the device count not above K); K is padded to a multiple of it with copies of
seed 0 whose results are discarded. Each seed's batch is sharded over `data`.

Resuming: checkpoints/latest holds the states, the best states and the loop's progress every
`train.checkpoint_every` rounds; started again in the same workdir, the run goes on from there and
ends exactly as an uninterrupted one (the order of round r depends only on (seed, r)).
"""

from __future__ import annotations

import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from hsi_jax import checkpoint, families, fileutil, parallel, seeds, validate
from hsi_jax import workdir as workdir_lib
from hsi_jax.data import custom, io, split_files, splits as splits_lib
from hsi_jax.evaluate import metrics as metrics_lib
from hsi_jax.families import classical, windows
from hsi_jax.train import optim, progress, state as state_lib

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
  return (f"split {split.info['protocol']}, partition {config.partition}: train {totals['train']:,}"
          f" / leaked {totals['leaked']:,} / val {totals['val']:,} / test {totals['test']:,} px; "
          f"windows: {len(split.train_windows):,} train, {len(split.val_windows):,} val, "
          f"{len(split.test_tiles):,} test" + (f"; accepted on attempt {attempts}" if attempts else ""))


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


def run(config, workdir) -> dict:
  """Trains config.num_seeds runs (see the module docstring); returns results.json's object: the
  run's for K = 1, {runs, mean, std, ...} for K > 1."""
  workdir = pathlib.Path(workdir).expanduser()
  validate.validate(config)
  configs = seeds.seed_configs(config)
  family = families.family_of(config.model.name)
  # Everything that can be refused is checked before the work directory is written to.
  workdir_lib.refuse_finished_or_foreign(config, workdir)
  run_dirs = [workdir] if len(configs) == 1 else [workdir / f"seed{k}" for k in range(len(configs))]
  say(f"loading scene {config.scene}...")
  scene = io.load_config_scene(config)
  say(scene_line(config, scene))
  for line in custom.derived_lines(config):
    say(line)
  for warning in scene.warnings:
    say(f"warning: {warning}")
  splits = [split_files.split_from_config(c, labels=scene, windowed=family is windows)[0]
            for c in configs]
  input_warnings = []  # per run: the scene's and its split's, said now and kept in results.json
  for k, (single, split) in enumerate(zip(configs, splits)):
    prefix = f"seed{k} (model seed {single.seed}) " if len(configs) > 1 else ""
    say(prefix + split_line(single, split))
    for line in split_files.file_lines(split):
      say(prefix + line)
    split_warnings = splits_lib.split_warnings(scene.gt, split)
    for warning in split_warnings:
      say(f"warning: {prefix}{warning}")
    input_warnings.append(list(scene.warnings) + split_warnings)
  if family is classical:
    for split in splits:
      classical.check_split(config, split)
  workdir_lib.prepare(config, workdir)
  for split, run_dir in zip(splits, run_dirs):
    workdir_lib.save_or_check_split(split, run_dir, scene)
  if family is classical:
    runs, train_seconds, mesh = _fit_classical(configs, splits, scene, run_dirs)
  else:
    runs, train_seconds, mesh = _train(config, configs, splits, scene, workdir, run_dirs)
  for k, (single_run, before, split) in enumerate(zip(runs, input_warnings, splits)):
    for warning in single_run["warnings"]:
      say("warning: " + (f"seed{k}: " if len(runs) > 1 else "") + warning)
    single_run["warnings"] = before + single_run["warnings"]
    if split.info["protocol"] in ("file", "npz"):  # a split from a file: which, how leaky
      single_run["split_file"] = {key: split.info[key] for key in
                                  ("file", "file_sha256", "val_from_train", "patch", "leakage")
                                  if key in split.info}
  if len(runs) == 1:
    results = runs[0]
  else:
    results = dict(scene=config.scene, model=config.model.name, protocol=splits[0].info["protocol"],
                   num_seeds=config.num_seeds, seeds_over=config.seeds_over, runs=runs,
                   **summarize(runs), train_seconds=round(train_seconds, 2),
                   vmapped=mesh is not None, device=jax.devices()[0].device_kind,
                   num_devices=jax.device_count(),
                   mesh=dict(mesh.shape) if mesh is not None else None)
    for run_dir, single in zip(run_dirs, runs):
      fileutil.write_json(run_dir / "results.json", single)
  fileutil.write_json(workdir / "results.json", results)
  return results


def summarize(runs) -> dict:
  """{'mean': {oa, aa, kappa}, 'std': {...}} over runs (population std, ddof=0)."""
  values = {k: np.asarray([r[k] for r in runs], np.float64) for k in metrics_lib.SUMMARY_KEYS}
  return dict(mean={k: float(v.mean()) for k, v in values.items()},
              std={k: float(v.std()) for k, v in values.items()})


def _fit_classical(configs, splits, scene, run_dirs):
  """KNN / SVM: each seed fitted on the host (families/classical.py)."""
  runs, start = [], time.perf_counter()
  for single, split, run_dir in zip(configs, splits, run_dirs):
    seed_start = time.perf_counter()
    prediction, fit_info = classical.fit_predict(single, scene, split)
    run = workdir_lib.write_evaluation(single, run_dir, split, scene, prediction)
    run.update(fit_info, train_seconds=round(time.perf_counter() - seed_start, 2))
    runs.append(run)
  return runs, time.perf_counter() - start, None


def _select(mask, new, old):
  """Per seed: new where mask[k] else old (leading axis = seeds)."""
  return jax.tree.map(lambda n, o: jnp.where(mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, o),
                      new, old)


def _round_line(round_index, num_rounds, round_name, losses, val_acc, loop, seconds) -> str:
  """The line after each round: one run with its best so far and ETA, or each seed's numbers."""
  if len(losses) == 1:
    per_round = float(loop["train_seconds"]) / (round_index + 1)
    eta = per_round * (num_rounds - round_index - 1)
    return (f"{round_name} {round_index + 1:3d}/{num_rounds} loss {losses[0]:.5f} val_acc "
            f"{val_acc[0]:.4f} (best {float(loop['best_val'][0]):.4f} @ "
            f"{int(loop['best_round'][0]) + 1}) {per_round:.1f} s/{round_name}, ETA <= "
            f"{eta / 60:.1f} min")
  return (f"{round_name} {round_index + 1:3d}/{num_rounds} loss "
          + " ".join(f"{x:.4f}" for x in losses) + " val " + " ".join(f"{x:.4f}" for x in val_acc)
          + f" ({int((~loop['stopped']).sum())} active) {seconds:.1f} s")


def _train(config, configs, splits, scene, workdir, run_dirs):
  """The neural families: K seeds in one program, early stopping and best state per seed."""
  num_real = len(configs)
  mesh = parallel.make_mesh(seeds=seeds.seeds_axis(num_real, jax.device_count(), config.mesh_seeds))
  num_padded = num_real + (-num_real % mesh.shape["seeds"])
  padded_configs = configs + [configs[0]] * (num_padded - num_real)
  padded_splits = splits + [splits[0]] * (num_padded - num_real)
  step_progress = progress.StepProgress()
  program = families.family_of(config.model.name).make_program(
      config, scene, padded_splits, mesh, on_step=step_progress)
  train_config, data, name = config.train, program.data, program.round_name
  keys = [jax.random.key(c.seed) for c in padded_configs]
  states = program.init(jnp.stack([jax.random.fold_in(k, 0) for k in keys]))
  num_params = state_lib.count_params(jax.tree.map(lambda x: x[0], states))
  say(f"model {config.model.name}: {num_params:,} parameters (with BatchNorm statistics)"
      + (f", {num_real} runs in one vmapped program, mesh {dict(mesh.shape)}"
         if num_real > 1 else ""))

  def keys_of(round_index):
    return jnp.stack([seeds.round_key(k, round_index) for k in keys])

  checkpoints = checkpoint.Checkpoints(workdir)
  loop = dict(round=np.asarray(0, np.int64), best_val=np.full(num_real, -1.0),
              best_round=np.full(num_real, -1, np.int64), stopped=np.zeros(num_real, bool),
              rounds_run=np.zeros(num_real, np.int64), train_seconds=np.asarray(0.0))
  best_states = jax.tree.map(jnp.copy, states)  # own buffers: `states` is donated every round
  # Checkpoints hold the K real seeds only, so that a run resumes on another device count (whose
  # mesh pads K differently); the padding is copies of seed 0 again after a restore.
  def real_seeds(tree):
    return jax.tree.map(lambda x: x[:num_real], tree)

  def padded(tree):
    return jax.tree.map(lambda x: jnp.concatenate([x] + [x[:1]] * (num_padded - num_real)), tree)

  if checkpoints.latest_round() is not None:
    restored = checkpoints.restore({"states": real_seeds(states), "best": real_seeds(best_states),
                                    "loop": loop})
    sharding = jax.tree.map(lambda x: x.sharding, states)
    states, best_states = (jax.device_put(padded(restored[k]), sharding)
                           for k in ("states", "best"))
    loop = restored["loop"]
    say(f"Resuming {workdir} at {name} {int(loop['round']) + 1}.")
  for run_dir in run_dirs:
    workdir_lib.keep_metrics_before(run_dir / "metrics.jsonl", int(loop["round"]))

  start = time.perf_counter()
  say(f"compiling the training {name} ({program.steps_per_round} steps of {program.batch_size}"
      + (" per run" if num_real > 1 else "") + ")...")
  train_round = program.train_round.lower(states, data, keys_of(0),
                                          optim.round_learning_rate(train_config, 0)).compile()
  say(f"compiled in {time.perf_counter() - start:.1f} s")
  curves = [progress.Curves(d, f"{c.scene} {c.model.name}, {c.split.protocol} partition "
                            f"{c.partition}" + (f", model seed {c.seed}" if num_real > 1 else ""),
                            progress.lr_drop_rounds(train_config), name)
            for d, c in zip(run_dirs, configs)]
  select = jax.jit(_select)
  patience = train_config.patience
  for r in range(int(loop["round"]), program.num_rounds):
    if loop["stopped"].all():
      break
    start = time.perf_counter()
    step_progress.begin(f"{name} {r + 1}/{program.num_rounds}", program.steps_per_round,
                        num_real * program.batch_size)
    states, round_metrics = train_round(states, data, keys_of(r),
                                        optim.round_learning_rate(train_config, r))
    losses = np.asarray(round_metrics["loss"])[:num_real]
    step_progress.end()
    active = ~loop["stopped"]  # a stopped seed's state is frozen: what it computes is not used
    if not np.all(np.isfinite(losses[active])):
      saved = checkpoints.latest_round()
      raise FloatingPointError(
          f"Training loss became {', '.join(f'{x:g}' for x in losses)} in {name} {r + 1}; "
          "stopped. " + (f"The latest checkpoint holds {name} {saved + 1}. " if saved is not None
                         else "No checkpoint was saved. ") + "Lower train.learning_rate"
          + (" or set config.data.standardize=True." if "standardize" in config.data else "."))
    correct, counted = program.val_accuracy(np.asarray(program.val_predictions(states, data)))
    val_acc = correct[:num_real] / np.maximum(counted[:num_real], 1)
    improved = active & (val_acc > loop["best_val"])
    loop["best_val"] = np.where(improved, val_acc, loop["best_val"])
    loop["best_round"] = np.where(improved, r, loop["best_round"])
    loop["stopped"] = loop["stopped"] | (r - loop["best_round"] >= patience)
    if improved.any():
      best_states = select(jnp.asarray(np.pad(improved, (0, num_padded - num_real))), states,
                           best_states)
    seconds = time.perf_counter() - start
    loop["round"] = np.asarray(r + 1, np.int64)
    loop["train_seconds"] = np.asarray(float(loop["train_seconds"]) + seconds)
    loop["rounds_run"] = np.where(active, r + 1, loop["rounds_run"])
    for k in np.flatnonzero(active):  # each seed's own metrics.jsonl, up to its stop
      workdir_lib.append_metrics(run_dirs[k] / "metrics.jsonl", dict(
          round=r, step=(r + 1) * program.seed_steps[k], loss=float(losses[k]),
          val_accuracy=float(val_acc[k]), val_pixels=int(counted[k]), seconds=round(seconds, 3)))
      curves[k].update()
    if (r + 1) % train_config.checkpoint_every == 0:  # after the metrics: a resumed run redoes
      checkpoints.save(r, {"states": real_seeds(states), "best": real_seeds(best_states),
                           "loop": loop})  # the rounds after it, lines and all
    say(_round_line(r, program.num_rounds, name, losses, val_acc, loop, seconds))
    if num_real == 1 and loop["stopped"][0]:
      say(f"Early stopping: no val improvement for {patience} {name}s.")
  checkpoints.close()
  for seed_curves in curves:
    seed_curves.update(force=True)

  maps = program.predict_maps(best_states, data)
  runs = []
  for k, (single, split, run_dir) in enumerate(zip(configs, splits, run_dirs)):
    run = workdir_lib.write_evaluation(single, run_dir, split, scene, maps[k])
    run.update(num_params=num_params, best_epoch=int(loop["best_round"][k]) + 1,
               epochs_run=int(loop["rounds_run"][k]),
               best_val_accuracy=float(loop["best_val"][k]),
               train_seconds=round(float(loop["train_seconds"]), 2),  # shared by all seeds
               device=jax.devices()[0].device_kind, num_devices=jax.device_count())
    runs.append(run)
  return runs, float(loop["train_seconds"]), mesh
