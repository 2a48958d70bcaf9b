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

Work directory: config.json, metrics.jsonl (per epoch: lists over seeds), checkpoints/ (all seeds
in one), seed<k>/ (split.npz / .json / .png, map.npy, map.png, results.json of that run), and
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
from hsi_jax.train import loop, optim, state as state_lib, step as step_lib, tasks

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
  scene = io.load_scene(config.scene, config.data.root or None)
  splits = [loop.save_or_check_split(c, workdir / f"seed{k}", scene) for k, c in enumerate(configs)]
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
  epoch_fn = step_lib.make_train_epoch(model, make_optimizer, train_config, patch, mesh, augment,
                                       jit=False)
  train_epoch = jax.jit(jax.vmap(epoch_fn, spmd_axis_name="seeds"), donate_argnums=0,
                        out_shardings=(seed_sharding, parallel.replicated(mesh)))
  predict_one = step_lib.make_predict(model, patch, mesh, train_config.eval_batch_size, jit=False)
  predict = jax.jit(jax.vmap(predict_one, in_axes=(0, 0, None), spmd_axis_name="seeds"),
                    out_shardings=parallel.replicated(mesh))
  predict_val = jax.jit(jax.vmap(predict_one, spmd_axis_name="seeds"),
                        out_shardings=parallel.replicated(mesh))
  select = jax.jit(_select)

  val_labels = [patches.pad_scene(s.val, patch) for s in splits]
  val_origins = [splits_lib.window_origins(s.val_windows, patch) for s in splits]
  checkpoints = checkpoint.Checkpoints(workdir)
  progress = dict(epoch=np.asarray(0, np.int64), best_val=np.full(num_real, -1.0),
                  best_epoch=np.full(num_real, -1, np.int64), stopped=np.zeros(num_real, bool),
                  epochs_run=np.zeros(num_real, np.int64), train_seconds=np.asarray(0.0))
  best_states = jax.tree.map(jnp.copy, states)  # own buffers: `states` is donated every epoch
  if checkpoints.latest_epoch("latest") is not None:
    restored = checkpoints.restore("latest", {"states": states, "best": best_states,
                                              "progress": progress})
    states, best_states = (parallel.put(restored[k], seed_sharding) for k in ("states", "best"))
    progress = restored["progress"]
    print(f"Resuming {workdir} at epoch {int(progress['epoch']) + 1}.", flush=True)
  metrics_path = workdir / "metrics.jsonl"
  loop.keep_metrics_before(metrics_path, int(progress["epoch"]))

  for epoch in range(int(progress["epoch"]), train_config.epochs):
    if progress["stopped"].all():
      break
    start = time.perf_counter()
    round_keys = jnp.stack([tasks.round_key(k, epoch) for k in keys])
    states, epoch_metrics = train_epoch(states, data, round_keys)
    losses = np.asarray(epoch_metrics["loss"])[:num_real]
    if not np.all(np.isfinite(losses)):
      raise FloatingPointError(f"Training loss became {losses} in epoch {epoch + 1}; stopped.")
    predictions = np.asarray(predict_val(states.variables, data.cube, data.val_origins))
    val_acc = np.zeros(num_real)
    for k in range(num_real):
      correct, counted = step_lib.window_accuracy(
          predictions[k, :len(val_origins[k])], val_labels[k], val_origins[k], patch,
          train_config.val_metric)
      val_acc[k] = correct / max(counted, 1)
    active = ~progress["stopped"]
    improved = active & (val_acc > progress["best_val"])
    progress["best_val"] = np.where(improved, val_acc, progress["best_val"])
    progress["best_epoch"] = np.where(improved, epoch, progress["best_epoch"])
    progress["stopped"] = progress["stopped"] | (epoch - progress["best_epoch"] >=
                                                 train_config.patience)
    padded_improved = np.concatenate([improved, np.zeros(num_padded - num_real, bool)])
    best_states = select(jnp.asarray(padded_improved), states, best_states)
    seconds = time.perf_counter() - start
    progress["epoch"] = np.asarray(epoch + 1, np.int64)
    progress["train_seconds"] = np.asarray(float(progress["train_seconds"]) + seconds)
    progress["epochs_run"] = np.where(active, epoch + 1, progress["epochs_run"])
    if (epoch + 1) % train_config.checkpoint_every == 0:
      checkpoints.save("latest", epoch, {"states": states, "best": best_states,
                                         "progress": progress})
    loop.append_metrics(metrics_path, dict(
        epoch=epoch, loss=losses.tolist(), val_accuracy=val_acc.tolist(),
        active=active.tolist(), seconds=round(seconds, 3)))
    print(f"epoch {epoch + 1:3d}/{train_config.epochs} loss "
          + " ".join(f"{x:.4f}" for x in losses) + " val " + " ".join(f"{x:.4f}" for x in val_acc)
          + f" ({int(active.sum())} active) {seconds:.1f} s", flush=True)
  checkpoints.close()

  origins, num_grid = predict_lib.scene_tiles(scene.gt.shape, patch)
  tiles = np.asarray(predict(best_states.variables, data.cube, origins))
  runs = []
  for k, (single, split) in enumerate(zip(configs, splits)):
    prediction = predict_lib.assemble(tiles[k], origins, num_grid, scene.gt.shape)
    run = loop.evaluate(single, workdir / f"seed{k}", split, scene, prediction)
    run.update(num_params=num_params, best_epoch=int(progress["best_epoch"][k]) + 1,
               epochs_run=int(progress["epochs_run"][k]),
               best_val_accuracy=float(progress["best_val"][k]),
               train_seconds=round(float(progress["train_seconds"]), 2),  # shared by all seeds
               device=jax.devices()[0].device_kind, num_devices=jax.device_count())
    fileutil.write_json(workdir / f"seed{k}" / "results.json", run)
    runs.append(run)
  return _write_results(config, workdir, runs, float(progress["train_seconds"]), mesh)


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
