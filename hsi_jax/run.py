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

import json
import pathlib
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hsi_jax import bundle as bundle_lib, checkpoint, compile_cache, families, fileutil, inference
from hsi_jax import config_util, loop as loop_lib, preemption, seeds, validate
from hsi_jax import workdir as workdir_lib
from hsi_jax.data import custom, io, rasters, split_files, split_sources, splits as splits_lib
from hsi_jax.evaluate import metrics as metrics_lib
from hsi_jax.train import optim, progress

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
  cache, counts_before = compile_cache.enable(config.compile_cache), compile_cache.counts()
  configs = seeds.seed_configs(config)
  family = families.family_of(config.model.name)
  # Everything that can be refused is checked before the work directory is written to (but for
  # its lock, which also tells whether it can be written; claim removes it again on a refusal).
  with workdir_lib.claim(workdir):
    workdir_lib.refuse_finished_or_foreign(config, workdir)
    inputs = workdir_lib.input_hashes(configs)
    workdir_lib.check_inputs(workdir, inputs)
    return _run(config, workdir, configs, family, inputs, cache, counts_before)


def _run(config, workdir, configs, family, inputs, cache, counts_before) -> dict:
  """run's body, inside the work directory's claim."""
  run_dirs = workdir_lib.run_dirs(workdir, configs, config.seeds_over)
  say(f"loading scene {config.scene}...")
  scene = io.load_config_scene(config)
  say(scene_line(config, scene))
  for line in custom.derived_lines(config):
    say(line)
  for warning in scene.warnings:
    say(f"warning: {warning}")
  splits = [split_sources.split_from_config(c, labels=scene, windowed=family.WINDOWED)[0]
            for c in configs]
  input_warnings = []  # per run: the scene's and its split's, said now and kept in results.json
  for single, split, run_dir in zip(configs, splits, run_dirs):
    prefix = f"{run_dir.name} (model seed {single.seed}) " if len(configs) > 1 else ""
    say(prefix + split_line(single, split))
    for line in split_sources.source_lines(split):
      say(prefix + line)
    split_warnings = splits_lib.split_warnings(scene.gt, split)
    for warning in split_warnings:
      say(f"warning: {prefix}{warning}")
    input_warnings.append(list(scene.warnings) + split_warnings)
  mesh = family.make_mesh(config, len(configs))
  family.check(config, splits, mesh)
  workdir_lib.prepare(config, workdir, inputs)
  for split, run_dir in zip(splits, run_dirs):
    workdir_lib.save_or_check_split(split, run_dir, scene)
  runs, train_seconds = _train(config, configs, splits, scene, workdir, run_dirs, family, mesh)
  for k, (single_run, before, split) in enumerate(zip(runs, input_warnings, splits)):
    for warning in single_run["warnings"]:
      say("warning: " + (f"{run_dirs[k].name}: " if len(runs) > 1 else "") + warning)
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
                   vmapped=families.is_neural(config.model.name),
                   device=jax.devices()[0].device_kind, num_devices=jax.device_count(),
                   mesh=dict(mesh.shape))
    for run_dir, single in zip(run_dirs, runs):
      fileutil.write_json(run_dir / "results.json", single)
  fileutil.write_json(workdir / "results.json", results)
  requested, loaded = (now - before for now, before in zip(compile_cache.counts(), counts_before))
  if loaded:
    say(f"{loaded} of the {requested} compiled programs were loaded from {cache}")
  return results


def summarize(runs) -> dict:
  """{'mean': {oa, aa, kappa}, 'std': {...}} over runs (population std, ddof=0)."""
  values = {k: np.asarray([r[k] for r in runs], np.float64) for k in metrics_lib.SUMMARY_KEYS}
  return dict(mean={k: float(v.mean()) for k, v in values.items()},
              std={k: float(v.std()) for k, v in values.items()})


def _round_line(result, num_rounds: int, round_name: str, loop) -> str:
  """The line after each round: one run with its best so far and ETA, or each seed's numbers."""
  r, losses, val_acc = result.index, result.losses, result.val_accuracy
  if len(losses) == 1:
    per_round = float(loop.train_seconds) / (r + 1)
    eta = per_round * (num_rounds - r - 1)
    return (f"{round_name} {r + 1:3d}/{num_rounds} loss {losses[0]:.5f} val_acc "
            f"{val_acc[0]:.4f} (best {float(loop.best_val[0]):.4f} @ "
            f"{int(loop.best_round[0]) + 1}) {per_round:.1f} s/{round_name}, ETA <= "
            f"{eta / 60:.1f} min")
  return (f"{round_name} {r + 1:3d}/{num_rounds} loss "
          + " ".join(f"{x:.4f}" for x in losses) + " val " + " ".join(f"{x:.4f}" for x in val_acc)
          + f" ({int((~loop.stopped).sum())} active) {result.seconds:.1f} s")


def _train(config, configs, splits, scene, workdir, run_dirs, family, mesh):
  """K seeds of the family's program through loop.train: checkpoints, metrics lines, curves and
  printing as its hooks; then each seed's map from its best state, and its results."""
  num_real = len(configs)
  step_progress = progress.StepProgress()
  program, keys, states, real_seeds, padded = _program(config, configs, splits, scene, family,
                                                       mesh)
  train_config, name = config.train, program.round_name
  num_params = program.num_params(states)
  say(f"model {config.model.name}: " + (f"{num_params:,} parameters (with BatchNorm statistics)"
                                        if num_params is not None else "fitted on the host")
      + (f", {num_real} runs in one vmapped program, mesh {dict(mesh.shape)}"
         if num_real > 1 and num_params is not None else ""))

  checkpoints = checkpoint.Checkpoints(workdir, warn=say)
  loop = loop_lib.start(num_real)
  best_states = _copied(states)  # own buffers: `states` is donated every chunk
  if checkpoints.latest_step() is not None:
    restored = checkpoints.restore({"states": real_seeds(states), "best": real_seeds(best_states),
                                    "loop": loop}, adapt=_loop_before_chunks)
    sharding = jax.tree.map(lambda x: x.sharding, states)
    states, best_states = (jax.device_put(padded(restored[k]), sharding)
                           for k in ("states", "best"))
    loop = restored["loop"]
    say(f"Resuming {workdir} at {name} {int(loop.round) + 1}"
        + (f", step {int(loop.chunk) * program.chunk_steps + 1}" if int(loop.chunk) else "")
        + ".")
  for run_dir in run_dirs:
    if workdir_lib.keep_metrics_before(run_dir / "metrics.jsonl", int(loop.round)):
      say(f"{run_dir / 'metrics.jsonl'}: its last line was cut short (a kill while it was "
          "written); dropped, that round runs again.")

  def learning_rate(r):
    return optim.round_learning_rate(train_config, r)

  def position(loop) -> int:  # the steps the loop has taken: a checkpoint's number
    return (int(loop.round) * program.steps_per_round
            + int(loop.chunk) * program.chunk_steps)

  def save(loop, states, best):  # once per position (a stop may come right after a save)
    if checkpoints.latest_step() != position(loop):
      checkpoints.save(position(loop), {"states": real_seeds(states), "best": real_seeds(best),
                                        "loop": loop})

  start, counts = time.perf_counter(), compile_cache.counts()
  if program.compile_note:
    say(f"compiling {program.compile_note}" + (" per run" if num_real > 1 else "") + "...")
  train_chunk = program.compile_chunk(states, program.data, jnp.stack(keys), learning_rate(0),
                                      np.int32(0))
  if program.compile_note:
    say(f"compiled in {time.perf_counter() - start:.1f} s"
        + (" (from the cache)" if compile_cache.all_loaded(counts) else ""))
  curves = [progress.Curves(d, f"{c.scene} {c.model.name}, {c.split.protocol} partition "
                            f"{c.partition}" + (f", model seed {c.seed}" if num_real > 1 else ""),
                            progress.lr_drop_rounds(train_config, program.num_rounds), name)
            for d, c in zip(run_dirs, configs)]

  def after_round(result, loop, states, best):
    step_progress.end()
    for k in np.flatnonzero(result.active):  # each seed's own metrics.jsonl, up to its stop
      workdir_lib.append_metrics(run_dirs[k] / "metrics.jsonl", dict(
          round=result.index, step=(result.index + 1) * program.seed_steps[k],
          loss=float(result.losses[k]), val_accuracy=float(result.val_accuracy[k]),
          val_pixels=int(result.val_counted[k]), seconds=round(result.seconds, 3)))
      curves[k].update()
    if int(loop.round) % train_config.checkpoint_every == 0:  # after the metrics: a resumed run
      save(loop, states, best)                                # redoes the rounds after it
    say(_round_line(result, program.num_rounds, name, loop))
    if num_real == 1 and loop.stopped[0]:
      say(f"Early stopping: no val improvement for {train_config.patience} {name}s.")

  def on_nonfinite(result, loop):
    step_progress.end()
    saved = checkpoints.latest_step()
    return (f"Training loss became {', '.join(f'{x:g}' for x in result.losses)} in {name} "
            f"{result.index + 1}; stopped. " + ("The latest checkpoint holds the run before it. "
                                                if saved is not None else
                                                "No checkpoint was saved. ")
            + "Lower train.learning_rate"
            + (" or set config.data.standardize=True." if "standardize" in config.data else "."))

  def before_round(r):
    step_progress.begin(f"{name} {r + 1}/{program.num_rounds}", program.steps_per_round,
                        num_real * program.batch_size)

  def on_stop(loop, states, best):
    step_progress.end()
    save(loop, states, best)
    checkpoints.close()
    signum = preemption.requested()
    raise preemption.Stopped(signum, f"stopped by {signal.Signals(signum).name} at {name} "
                             f"{int(loop.round) + 1}, step {int(loop.chunk) * program.chunk_steps}"
                             f" of {program.steps_per_round}, and saved; run the same command to "
                             "resume.")

  hooks = loop_lib.Hooks(before_round, step_progress.update, after_round, on_nonfinite,
                         lambda: preemption.requested() is not None, on_stop)
  with preemption.deferred():
    states, best_states, loop = loop_lib.train(program, train_chunk, states, best_states, loop,
                                               keys, learning_rate, train_config.patience,
                                               num_real, hooks)
    save(loop, states, best_states)  # the end of training: a rerun after a kill goes to the maps
  checkpoints.close()
  for seed_curves in curves:
    seed_curves.update(force=True)

  predictor = family.make_tile_predictor(config, scene.num_classes, family.make_mesh(config, 1))
  reader = rasters.ArrayReader(scene.cube)
  runs = []
  for k, (single, split, run_dir) in enumerate(zip(configs, splits, run_dirs)):
    bundle = _save_bundle(program, best_states, k, single, split, scene, run_dir)
    run = workdir_lib.evaluate_map(single, run_dir, split, scene,  # the map is the bundle's,
                                   inference.predict_map(reader, predictor, bundle))  # as predict's
    info = program.run_info(best_states, k)
    if "control_map" in info:  # the pixel models under `blocks`: the masked-input control
      info["control"] = workdir_lib.evaluate_control(run_dir, split, scene,
                                                     info.pop("control_map"))
    run.update(num_params=num_params, round_name=name,
               best_round=int(loop.best_round[k]) + 1, rounds_run=int(loop.rounds_run[k]),
               best_val_accuracy=float(loop.best_val[k]), **info,
               train_seconds=round(float(loop.train_seconds), 2),  # shared by all seeds
               device=jax.devices()[0].device_kind, num_devices=jax.device_count())
    runs.append(run)
  return runs, float(loop.train_seconds)


@jax.jit
def _copied(tree):
  """A copy of every leaf in new buffers: one program for the tree (leaf by leaf, one per shape)."""
  return jax.tree.map(jnp.copy, tree)


def _program(config, configs, splits, scene, family, mesh):
  """The family's program for the K runs padded to the mesh (copies of run 0), their keys, the
  initial states, and the functions from a padded tree to the K real seeds and back. Checkpoints
  hold the K real seeds only, so that a run resumes on another device count (whose mesh pads K
  differently); the padding is copies of seed 0 again after a restore."""
  num_real = len(configs)
  num_padded = num_real + (-num_real % mesh.shape["seeds"])
  program = family.make_program(config, scene, splits + [splits[0]] * (num_padded - num_real),
                                mesh)
  keys = [jax.random.key(c.seed) for c in configs + [configs[0]] * (num_padded - num_real)]
  states = program.init(jnp.stack([jax.random.fold_in(k, 0) for k in keys]))

  def real_seeds(tree):
    return jax.tree.map(lambda x: x[:num_real], tree)

  def padded(tree):
    return jax.tree.map(lambda x: jnp.concatenate([x] + [x[:1]] * (num_padded - num_real)), tree)

  return program, keys, states, real_seeds, padded


def _save_bundle(program, best_states, k, single, split, scene, run_dir) -> bundle_lib.Bundle:
  """Seed k's inference bundle, written to run_dir/bundle."""
  bundle = bundle_lib.Bundle(bundle_lib.describe(workdir_lib.config_dict(single), scene,
                                                 scene.cube[split.train > 0]),
                             **program.seed_bundle(best_states, k))
  bundle_lib.save(run_dir / "bundle", bundle)
  return bundle


def export_bundles(workdir) -> list[pathlib.Path]:
  """The inference bundles of a run that has none (finished before bundles existed): each seed's
  best state from workdir's checkpoint, its preprocessing fitted again on its saved split.npz;
  -> the bundle directories written."""
  workdir = pathlib.Path(workdir).expanduser()
  if not (workdir / "config.json").is_file():
    raise workdir_lib.WorkdirError(f"{workdir} holds no config.json: not the work directory of "
                                   "a run.")
  config = ml_collections.ConfigDict(config_util.with_added_leaves(
      json.loads((workdir / "config.json").read_text())))
  compile_cache.enable(config.compile_cache)
  validate.validate(config)
  checkpoints = checkpoint.Checkpoints(workdir)
  if checkpoints.latest_step() is None:
    raise workdir_lib.WorkdirError(f"{workdir} holds no checkpoint (checkpoints/latest) to make "
                                   "bundles from; train the run again.")
  configs = seeds.seed_configs(config)
  family = families.family_of(config.model.name)
  run_dirs = workdir_lib.run_dirs(workdir, configs, config.seeds_over)
  scene = io.load_config_scene(config)
  splits = [split_files.load_split(run_dir / "split.npz") for run_dir in run_dirs]
  mesh = family.make_mesh(config, len(configs))
  program, _, states, real_seeds, padded = _program(config, configs, splits, scene, family, mesh)
  restored = checkpoints.restore({"states": real_seeds(states), "best": real_seeds(states),
                                  "loop": loop_lib.start(len(configs))},
                                 adapt=_loop_before_chunks)
  checkpoints.close()
  best = jax.device_put(padded(restored["best"]), jax.tree.map(lambda x: x.sharding, states))
  for k, (single, split, run_dir) in enumerate(zip(configs, splits, run_dirs)):
    _save_bundle(program, best, k, single, split, scene, run_dir)
  return [run_dir / "bundle" for run_dir in run_dirs]


def _loop_before_chunks(saved, target):
  """checkpoint.restore's adapt: a checkpoint saved before rounds ran in chunks holds a loop
  without the chunk fields; it restores as the old loop, completed with a round's start."""
  if ("loop", "chunk") in saved:
    return None
  fields = ("round", "best_val", "best_round", "stopped", "rounds_run", "train_seconds")
  old = dict(target, loop={f: getattr(target["loop"], f) for f in fields})

  def complete(restored):
    num_seeds = len(restored["loop"]["best_val"])
    return dict(restored, loop=loop_lib.start(num_seeds).replace(
        **{f: np.asarray(restored["loop"][f]) for f in fields}))

  return old, complete
