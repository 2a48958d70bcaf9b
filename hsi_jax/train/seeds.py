"""Many seeds in one program: K DA-IMRN runs trained together by one jitted `vmap` of the epoch.

`config.num_seeds = K` runs K seeds: with `config.seeds_over = "init"` the model seeds seed,
seed+1, ... over one partition; with `"partitions"` the partitions partition, partition+1, ...
(each with model seed `seed`). Seed k computes the single run of its config (same keys, same
epoch order -- step.epoch_order does not depend on the padding -- same early stopping) alongside the
others: partitions of different sizes are padded to the longest and the padded examples carry weight
0 (a step of padding only changes nothing). The vmapped epoch equals the separate epochs to float
precision; over whole runs the two drift apart at float level (tests/test_seeds.py).

Early stopping and the best checkpoint are per seed: a seed whose validation accuracy has not
improved for `train.patience` epochs stops counting (its best state is frozen; the program runs
until every seed has stopped or the epochs are spent, so no seed waits on another).

Devices: the mesh is (seeds, data). The seeds axis takes `config.mesh_seeds` devices (0 = the
largest divisor of the device count not above K); K is padded to a multiple of it with copies of
seed 0 whose results are discarded. Each seed's batch is sharded over `data`.

Work directory: config.json, checkpoints/ (all seeds in one), seed<k>/ (split.npz / .json / .png,
metrics.jsonl and curves.png up to that seed's stop, map.npy, map.png, results.json of that run), and
results.json = {runs: [...], mean, std, ...}. The pixel models (SSAN family) run their seeds one
after another into the same layout.
"""

from __future__ import annotations

import copy
import functools
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from hsi_jax import checkpoint, fileutil, models, parallel, sweep
from hsi_jax.data import io, patches, splits as splits_lib
from hsi_jax.evaluate import predict as predict_lib
from hsi_jax.train import loop, optim, progress, state as state_lib, step as step_lib, tasks

SEEDS_OVER = ("init", "partitions")


def seed_configs(config) -> list:
  """The K single-run configs (num_seeds = 1) the seeds of `config` stand for."""
  if config.seeds_over not in SEEDS_OVER:
    raise ValueError(f"seeds_over must be one of {SEEDS_OVER}, got {config.seeds_over!r}.")
  if config.num_seeds < 1:
    raise ValueError(f"num_seeds must be >= 1, got {config.num_seeds}.")
  configs = []
  for k in range(config.num_seeds):
    single = copy.deepcopy(config)
    single.num_seeds = 1
    if config.seeds_over == "init":
      single.seed = config.seed + k
    else:
      single.partition = config.partition + k
    configs.append(single)
  return configs


def seeds_axis(num_seeds: int, num_devices: int, requested: int = 0) -> int:
  if requested:
    if num_devices % requested:
      raise ValueError(f"mesh_seeds ({requested}) must divide the device count ({num_devices}).")
    return requested
  return max(d for d in range(1, num_devices + 1) if num_devices % d == 0 and d <= num_seeds)


def stack_padded(trees: list[step_lib.DeviceData]) -> step_lib.DeviceData:
  """Stacks per-seed data along a new leading axis; origins / flips padded to the longest."""
  def pad_rows(arrays, value):
    rows = max(a.shape[0] for a in arrays)
    return np.stack([np.concatenate([a, np.full((rows - len(a),) + a.shape[1:], value, a.dtype)])
                     for a in arrays])
  return step_lib.DeviceData(
      cube=np.stack([t.cube for t in trees]), train_labels=pad_rows([t.train_labels for t in trees], 0),
      train_origins=pad_rows([t.train_origins for t in trees], 0),
      train_flips=pad_rows([t.train_flips for t in trees], -1),
      val_origins=pad_rows([t.val_origins for t in trees], 0),
      num_windows=np.stack([t.num_windows for t in trees]))


def _select(mask, new, old):
  """Per seed: new where mask[k] else old (leading axis = seeds)."""
  return jax.tree.map(lambda n, o: jnp.where(mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, o),
                      new, old)


def train_seeds(config, workdir) -> dict:
  """Trains config.num_seeds runs (see the module docstring); returns results.json's object."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  loop.prepare_workdir(config, workdir)
  configs = seed_configs(config)
  if config.model.name != "da_imrn":
    return _sequential(config, configs, workdir)
  loop.say(f"loading scene {config.scene}...")
  scene = io.load_scene(config.scene, config.data.root or None)
  loop.say(loop.scene_line(config, scene))
  splits = [loop.save_or_check_split(c, workdir / f"seed{k}", scene) for k, c in enumerate(configs)]
  for k, (c, s) in enumerate(zip(configs, splits)):
    loop.say(f"seed{k} (model seed {c.seed}) " + loop.split_line(c, s))
  augment = {tasks.uses_augmentation(c, s) for c, s in zip(configs, splits)}
  if len(augment) != 1:
    raise ValueError("All partitions trained together must agree on flip augmentation.")
  augment = augment.pop()

  num_real = len(configs)
  mesh = parallel.make_mesh(seeds=seeds_axis(num_real, jax.device_count(), config.mesh_seeds))
  num_padded = num_real + (-num_real % mesh.shape["seeds"])
  padded_configs = configs + [configs[0]] * (num_padded - num_real)
  padded_splits = splits + [splits[0]] * (num_padded - num_real)
  host_data = stack_padded([tasks.window_data(c, scene.cube, s)
                            for c, s in zip(padded_configs, padded_splits)])
  seed_sharding = NamedSharding(mesh, P("seeds"))
  data = parallel.put(host_data, seed_sharding)

  patch, train_config = config.split.patch, config.train
  model = models.build_model(config.model, scene.num_classes)
  make_optimizer = functools.partial(optim.make_optimizer, train_config)
  init = state_lib.make_init(model, make_optimizer(1),
                             (jnp.zeros((1, patch, patch, scene.cube.shape[-1]), jnp.float32),))
  keys = [jax.random.key(c.seed) for c in padded_configs]
  states = jax.jit(jax.vmap(init), out_shardings=seed_sharding)(
      jnp.stack([jax.random.fold_in(k, 0) for k in keys]))
  num_params = state_lib.count_params(jax.tree.map(lambda x: x[0], states))
  loop.say(f"model {config.model.name}: {num_params:,} parameters (with BatchNorm statistics), "
           f"{num_real} runs in one vmapped program, mesh {dict(mesh.shape)}")
  step_progress = progress.StepProgress()
  epoch_fn = step_lib.make_train_epoch(model, make_optimizer, train_config, patch, mesh, augment,
                                       jit=False, on_step=step_progress)
  train_epoch = jax.jit(jax.vmap(epoch_fn, spmd_axis_name="seeds"), donate_argnums=0,
                        out_shardings=(seed_sharding, parallel.replicated(mesh)))
  steps_per_epoch = step_lib.epoch_steps(host_data.train_origins.shape[1], augment,
                                         train_config.batch_size)
  start = time.perf_counter()
  loop.say(f"compiling the training epoch ({steps_per_epoch} steps of {train_config.batch_size} "
           f"per run)...")
  train_epoch = train_epoch.lower(states, data, jnp.stack([tasks.round_key(k, 0) for k in keys])
                                  ).compile()
  loop.say(f"compiled in {time.perf_counter() - start:.1f} s")
  predict_one = step_lib.make_predict(model, patch, mesh, train_config.eval_batch_size, jit=False)
  predict = jax.jit(jax.vmap(predict_one, in_axes=(0, 0, None), spmd_axis_name="seeds"),
                    out_shardings=parallel.replicated(mesh))
  predict_val = jax.jit(jax.vmap(predict_one, spmd_axis_name="seeds"),
                        out_shardings=parallel.replicated(mesh))
  select = jax.jit(_select)

  val_labels = [patches.pad_scene(s.val, patch) for s in splits]
  val_origins = [splits_lib.window_origins(s.val_windows, patch) for s in splits]
  checkpoints = checkpoint.Checkpoints(workdir)
  run_state = dict(epoch=np.asarray(0, np.int64), best_val=np.full(num_real, -1.0),
                  best_epoch=np.full(num_real, -1, np.int64), stopped=np.zeros(num_real, bool),
                  epochs_run=np.zeros(num_real, np.int64), train_seconds=np.asarray(0.0))
  best_states = jax.tree.map(jnp.copy, states)  # own buffers: `states` is donated every epoch
  if checkpoints.latest_epoch("latest") is not None:
    restored = checkpoints.restore("latest", {"states": states, "best": best_states,
                                              "progress": run_state})
    states, best_states = (parallel.put(restored[k], seed_sharding) for k in ("states", "best"))
    run_state = restored["progress"]
    print(f"Resuming {workdir} at epoch {int(run_state['epoch']) + 1}.", flush=True)
  seed_dirs = [workdir / f"seed{k}" for k in range(num_real)]
  for seed_dir in seed_dirs:
    loop.keep_metrics_before(seed_dir / "metrics.jsonl", int(run_state["epoch"]))
  curves = [progress.Curves(d, f"{c.scene} {c.model.name}, {c.split.protocol} partition "
                            f"{c.partition}, model seed {c.seed}",
                            progress.lr_drop_epochs(train_config)) for d, c in zip(seed_dirs, configs)]

  for epoch in range(int(run_state["epoch"]), train_config.epochs):
    if run_state["stopped"].all():
      break
    start = time.perf_counter()
    round_keys = jnp.stack([tasks.round_key(k, epoch) for k in keys])
    step_progress.begin(f"epoch {epoch + 1}/{train_config.epochs}", steps_per_epoch,
                        num_real * train_config.batch_size)
    states, epoch_metrics = train_epoch(states, data, round_keys)
    losses = np.asarray(epoch_metrics["loss"])[:num_real]
    step_progress.end()
    if not np.all(np.isfinite(losses)):
      raise FloatingPointError(f"Training loss became {losses} in epoch {epoch + 1}; stopped.")
    predictions = np.asarray(predict_val(states.variables, data.cube, data.val_origins))
    val_acc = np.zeros(num_real)
    for k in range(num_real):
      correct, counted = step_lib.window_accuracy(
          predictions[k, :len(val_origins[k])], val_labels[k], val_origins[k], patch,
          train_config.val_metric)
      val_acc[k] = correct / max(counted, 1)
    active = ~run_state["stopped"]
    improved = active & (val_acc > run_state["best_val"])
    run_state["best_val"] = np.where(improved, val_acc, run_state["best_val"])
    run_state["best_epoch"] = np.where(improved, epoch, run_state["best_epoch"])
    run_state["stopped"] = run_state["stopped"] | (epoch - run_state["best_epoch"] >=
                                                 train_config.patience)
    padded_improved = np.concatenate([improved, np.zeros(num_padded - num_real, bool)])
    best_states = select(jnp.asarray(padded_improved), states, best_states)
    seconds = time.perf_counter() - start
    run_state["epoch"] = np.asarray(epoch + 1, np.int64)
    run_state["train_seconds"] = np.asarray(float(run_state["train_seconds"]) + seconds)
    run_state["epochs_run"] = np.where(active, epoch + 1, run_state["epochs_run"])
    if (epoch + 1) % train_config.checkpoint_every == 0:
      checkpoints.save("latest", epoch, {"states": states, "best": best_states,
                                         "progress": run_state})
    for k in np.flatnonzero(active):  # each seed's own metrics.jsonl, up to its stop
      loop.append_metrics(seed_dirs[k] / "metrics.jsonl", dict(
          epoch=epoch, loss=float(losses[k]), val_accuracy=float(val_acc[k]),
          seconds=round(seconds, 3)))
      curves[k].update()
    loop.say(f"epoch {epoch + 1:3d}/{train_config.epochs} loss "
          + " ".join(f"{x:.4f}" for x in losses) + " val " + " ".join(f"{x:.4f}" for x in val_acc)
          + f" ({int(active.sum())} active) {seconds:.1f} s")
  checkpoints.close()
  for seed_curves in curves:
    seed_curves.update(force=True)

  origins, num_grid = predict_lib.scene_tiles(scene.gt.shape, patch)
  tiles = np.asarray(predict(best_states.variables, data.cube, origins))
  runs = []
  for k, (single, split) in enumerate(zip(configs, splits)):
    prediction = predict_lib.assemble(tiles[k], origins, num_grid, scene.gt.shape)
    run = loop.evaluate(single, workdir / f"seed{k}", split, scene, prediction)
    run.update(num_params=num_params, best_epoch=int(run_state["best_epoch"][k]) + 1,
               epochs_run=int(run_state["epochs_run"][k]),
               best_val_accuracy=float(run_state["best_val"][k]),
               train_seconds=round(float(run_state["train_seconds"]), 2),  # shared by all seeds
               device=jax.devices()[0].device_kind, num_devices=jax.device_count())
    fileutil.write_json(workdir / f"seed{k}" / "results.json", run)
    runs.append(run)
  return _write_results(config, workdir, runs, float(run_state["train_seconds"]), mesh)


def _sequential(config, configs, workdir) -> dict:
  """Pixel models: the seeds' runs one after another, in the same layout."""
  start = time.perf_counter()
  runs = [loop.train_and_evaluate(c, workdir / f"seed{k}") for k, c in enumerate(configs)]
  return _write_results(config, workdir, runs, time.perf_counter() - start, None)


def _write_results(config, workdir, runs, train_seconds, mesh) -> dict:
  summary = sweep.summarize(runs)
  results = dict(scene=config.scene, model=config.model.name, protocol=config.split.protocol,
                 num_seeds=config.num_seeds, seeds_over=config.seeds_over, runs=runs,
                 mean=summary["mean"], std=summary["std"], train_seconds=round(train_seconds, 2),
                 vmapped=mesh is not None, device=jax.devices()[0].device_kind,
                 num_devices=jax.device_count(),
                 mesh=dict(mesh.shape) if mesh is not None else None)
  fileutil.write_json(workdir / "results.json", results)
  return results
