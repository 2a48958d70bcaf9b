"""Training and evaluation: loss, metrics, tiles, and whole runs on the real Indian Pines scene."""

import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from hsi_jax import config_util, families, loop, run, seeds, workdir as workdir_lib
from hsi_jax.data import io as data_io, patches, preprocess, split_files, split_sources, splits
from hsi_jax.evaluate import metrics
from hsi_jax.families import program as program_lib, windows
from hsi_jax.train import losses, progress, step

from conftest import REPO, subprocess_env

RUNLOCAL = str(REPO / "configs" / "ip.py") + ":runlocal"


def test_focal_loss_ignores_unlabelled_pixels():
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 4, 5)), jnp.float32)
  labels = np.zeros((2, 4, 4), np.int32)
  labels[0, 1, 2], labels[1, 3, 3] = 2, 5
  total, count = losses.focal_loss_sum(logits, jnp.asarray(labels))
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  q = np.array([probs[0, 1, 2, 1], probs[1, 3, 3, 4]]) + 1e-9
  np.testing.assert_allclose(total, np.sum(0.5 * (1 - q) ** 2 * -np.log(q)), rtol=1e-5)
  assert int(count) == 2
  # Changing the logits of unlabelled pixels changes nothing.
  other = logits.at[0, 0, 0].set(100.0)
  np.testing.assert_allclose(losses.focal_loss_sum(other, jnp.asarray(labels))[0], total)


def test_metrics_hand_case_and_sklearn_kappa():
  true = np.array([1, 1, 1, 2, 2, 3, 3, 3, 3, 0])
  pred = np.array([1, 2, 1, 2, 2, 3, 1, 3, 3, 2])  # the last pixel is unlabelled: skipped
  confusion = np.asarray(metrics.confusion_matrix(jnp.asarray(true), jnp.asarray(pred), 4))
  assert confusion.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 3, 0], [0, 0, 0, 0]]
  summary = metrics.summarize(confusion)
  assert summary["oa"] == pytest.approx(7 / 9)
  assert summary["aa"] == pytest.approx((2 / 3 + 1 + 3 / 4) / 3)  # class 4 has no test pixel
  assert summary["aa_code"] == pytest.approx((2 / 4 + 2 / 3 + 3 / 5 + 0) / 4)
  assert summary["kappa"] == pytest.approx(cohen_kappa_score(true[:9], pred[:9]))
  assert summary["per_class_accuracy"][3] is None and summary["num_test_pixels"] == 9


def test_each_pixel_takes_the_grid_window_or_the_last_edge_window():
  """Indian Pines (145 x 145, p = 4): the 4 x 4 grid covers rows / cols 0..143; row and column
  144 take windows flush with the edge (141), and where an edge window overlaps the grid's last
  row or column only beside the border, the corner window (141, 141) -- written last -- wins."""
  rows = cols = np.arange(145)
  start_rows, start_cols = windows.window_starts(rows, cols, (145, 145), 4)
  for pixel, window in [((0, 0), (0, 0)), ((143, 143), (140, 140)), ((141, 143), (140, 140)),
                        ((144, 144), (141, 141)), ((144, 10), (141, 8)), ((10, 144), (8, 141)),
                        ((142, 144), (141, 141)), ((144, 142), (141, 141))]:
    assert (start_rows[pixel], start_cols[pixel]) == window, pixel
  assert np.all((start_rows <= rows[:, None]) & (rows[:, None] < start_rows + 4))
  assert np.all((start_cols <= cols[None, :]) & (cols[None, :] < start_cols + 4))


def test_window_origins_of_clipped_patches():
  windows = np.array([[0, 0, 3, 2], [5, 6, 9, 10], [141, 142, 145, 145]])
  assert splits.window_origins(windows, 4).tolist() == [[-1, -2], [5, 6], [141, 142]]


@pytest.fixture(scope="module")
def runlocal_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("runlocal")
  start = time.perf_counter()
  results = run.run(config_util.load_config(RUNLOCAL), workdir)
  return workdir, results, time.perf_counter() - start


def _da_imrn_params(width, bands=200, patch=4, classes=16, valid_kernels=(1, 1, 2, 1, 1, 1),
                    spatial_taps=(1,), spectral_taps=(3, 5, 7), hidden=512):
  """DA-IMRN's parameters and BatchNorm statistics on Indian Pines (the code's spatial block: one
  1x1x1 branch), counted layer by layer from docs/decisions.md ("DA-IMRN network"): stage k
  feeds each branch its own output concatenated with the other's attended one; band stride 2."""
  features = [(round(f2 * width), round(f3 * width)) for f2, f3 in
              ((32, 64), (32, 64), (64, 128), (64, 128), (128, 256), (128, 256))]
  hidden = round(hidden * width)
  total, channels = 0, 1  # both branches start from the cube: one channel
  for (f2, f3), k_valid in zip(features, valid_kernels):
    strided = -(-bands // 2)
    bands = strided - k_valid + 1
    total += patch * patch * channels + 1  # SAM: one (p, p, 1) conv to one channel
    total += 2 * channels * hidden + hidden + channels  # SCAM's MLP C -> hidden -> C
    total += (channels + 1) + ((patch // 2) ** 2 * channels + 1)  # SCAM's fine and coarse maps
    for taps in (spatial_taps, spectral_taps):  # MSpaRB and MSpeRB on 2C input channels
      total += 2 * channels * f3 + f3 + 4 * strided  # entry 1x1x1 conv + BN (4 per band)
      total += sum(t * f3 * f2 + f2 for t in taps) + len(taps) * f2 * f3 + f3  # branches + fuse
      total += 4 * strided  # BN after the fuse
      total += k_valid * f3 * f3 + f3 + 4 * bands  # valid band conv + BN
    channels = f3
  return total + 2 * channels * classes + classes  # 1x1x1 classifier on both branches


@pytest.mark.xdist_group("train_runlocal_run")  # the module-scoped `runlocal_run`: built once
@pytest.mark.slow
def test_runlocal_end_to_end_on_indian_pines(runlocal_run):
  workdir, results, seconds = runlocal_run
  config = config_util.load_config(RUNLOCAL)
  for name in ("config.json", "split.npz", "split.json", "split.png", "metrics.jsonl", "curves.png",
               "results.json", "map.npy", "map.png"):
    assert (workdir / name).is_file(), name
  assert set(os.listdir(workdir / "checkpoints")) == {"latest"}
  split = split_files.load_split(workdir / "split.npz")
  epochs = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  # Every configured epoch ran (runlocal's patience is its epoch count), each as many steps as
  # the training windows and their flipped copies fill in whole batches.
  steps = math.ceil(2 * len(split.train_windows) / config.train.batch_size)
  assert [(e["round"], e["step"]) for e in epochs] == [
      (r, (r + 1) * steps) for r in range(config.train.epochs)]
  assert epochs[-1]["loss"] < epochs[0]["loss"]
  # The training time is the epochs' own times (metrics.jsonl, in ms), within the run's wall time.
  assert results["train_seconds"] == pytest.approx(sum(e["seconds"] for e in epochs),
                                                   abs=0.005 + 0.0005 * len(epochs))
  assert results["train_seconds"] < seconds
  # The parameter count, by hand (the formula gives the official network's 3,298,960 at width 1).
  assert _da_imrn_params(width=1.0) == 3_298_960
  assert results["num_params"] == _da_imrn_params(width=config.model.width) == 216_976
  # results.json is computed from map.npy at the test pixels of split.npz.
  prediction = np.load(workdir / "map.npy")
  assert prediction.shape == (145, 145) and prediction.min() >= 1
  test = split.test > 0
  # Learnt, not guessed: above labelling every test pixel with their commonest class (23.3 % of
  # partition 1's), and at the OA this quick run reaches (69.5 % on this 2-core CPU; 67.9-70.2 %
  # for model seeds 0-2 in results/ip_ablation_runlocal) within the float drift of ten Nadam
  # epochs on other hardware (docs/design.md, "Devices and float drift").
  majority = np.bincount(split.test[test]).max() / test.sum()
  assert results["oa"] > majority
  assert results["oa"] == pytest.approx(0.695, abs=0.03)
  assert results["num_test_pixels"] == int(test.sum())
  assert results["oa"] == pytest.approx(np.mean(prediction[test] == split.test[test]))
  assert results["split_hash"] == split.content_hash()


@pytest.mark.xdist_group("train_runlocal_run")  # the module-scoped `runlocal_run`: built once
@pytest.mark.slow
def test_finished_or_foreign_workdir_is_refused(runlocal_run, tmp_path):
  workdir, _, _ = runlocal_run
  with pytest.raises(workdir_lib.WorkdirError, match="finished run"):
    run.run(config_util.load_config(RUNLOCAL), workdir)
  config = config_util.load_config(RUNLOCAL)
  workdir_lib.prepare(config, tmp_path, inputs={})
  config.train.learning_rate = 0.5
  with pytest.raises(workdir_lib.WorkdirError, match="different config.*train"):
    workdir_lib.refuse_finished_or_foreign(config, tmp_path)


def test_where_compiled_programs_live_is_no_part_of_the_experiment(tmp_path):
  """A resumed run may move or turn off the compilation cache, and a work directory of a run
  from before the leaf existed (its config.json without it) is the same config."""
  config = config_util.load_config(RUNLOCAL)
  workdir_lib.prepare(config, tmp_path, inputs={})
  config.compile_cache = "off"
  assert workdir_lib.check_same_config(config, tmp_path)
  saved = json.loads((tmp_path / "config.json").read_text())
  del saved["compile_cache"]
  (tmp_path / "config.json").write_text(json.dumps(saved))
  assert workdir_lib.check_same_config(config, tmp_path)
  config.seed = 3
  with pytest.raises(workdir_lib.WorkdirError, match="different config.*seed"):
    workdir_lib.check_same_config(config, tmp_path)


def test_a_run_from_before_a_model_leaf_existed_is_a_run_of_its_old_value(tmp_path):
  """config_util.ADDED_LEAVES: a DA-IMRN work directory whose config.json has no
  model.initializer (every run before the leaf) is a run of he_normal: it resumes and is read
  back; another initializer is another config. Other models get no DA-IMRN leaf."""
  assert config_util.with_added_leaves({"model": {"name": "ssan"}}) == {
      "model": {"name": "ssan"}, "compile_cache": ""}
  config = config_util.load_config(RUNLOCAL)
  workdir_lib.prepare(config, tmp_path, inputs={})
  saved = json.loads((tmp_path / "config.json").read_text())
  del saved["model"]["initializer"]
  (tmp_path / "config.json").write_text(json.dumps(saved))
  assert workdir_lib.check_same_config(config, tmp_path)
  config.model.initializer = "he_normal_keras_2_0"
  with pytest.raises(workdir_lib.WorkdirError, match="different config.*model"):
    workdir_lib.check_same_config(config, tmp_path)


def test_metrics_lines_on_resume(tmp_path):
  """keep_metrics_before (run.py's resume): rounds from the checkpoint's on are dropped, and a torn
  last line; a line that does not parse before the last is damage, named."""
  path = tmp_path / "metrics.jsonl"
  rounds = "".join(json.dumps({"round": r, "loss": 1.0 / (r + 1)}) + "\n" for r in range(4))
  path.write_text(rounds + '{"round": 4, "lo')
  assert workdir_lib.keep_metrics_before(path, 2)
  assert [json.loads(line)["round"] for line in path.read_text().splitlines()] == [0, 1]
  assert not workdir_lib.keep_metrics_before(path, 2)
  path.write_text(rounds.replace('{"round": 1', '{"round": 1 garbled', 1))
  with pytest.raises(workdir_lib.WorkdirError, match="line 2 is not JSON"):
    workdir_lib.keep_metrics_before(path, 2)


def launch_train(workdir, *overrides, env=None):
  return subprocess.Popen([sys.executable, "launch/train.py", f"--config={RUNLOCAL}",
                           f"--workdir={workdir}", *overrides], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=subprocess_env(**(env or {})))


@pytest.mark.xdist_group("train_runlocal_run")  # the module-scoped `runlocal_run`: built once
@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(runlocal_run, tmp_path):
  reference_dir, reference, _ = runlocal_run
  process = launch_train(tmp_path)
  metrics_path = tmp_path / "metrics.jsonl"
  deadline = time.time() + 1800  # a safety limit only (a loaded 2-core CPU takes ~5 min)
  while time.time() < deadline and process.poll() is None:
    if metrics_path.exists() and len(metrics_path.read_text().splitlines()) >= 3:
      break
    time.sleep(0.2)
  assert process.poll() is None, "run ended before it could be killed"
  os.kill(process.pid, signal.SIGKILL)
  process.wait()
  assert not (tmp_path / "results.json").exists()
  epochs_before_kill = len(metrics_path.read_text().splitlines())
  assert epochs_before_kill >= 3
  with open(metrics_path, "a") as torn:  # as a kill in the middle of an append leaves it
    torn.write('{"round": 9, "step": 5')
  resumed = launch_train(tmp_path)
  output, _ = resumed.communicate(timeout=1800)
  assert resumed.returncode == 0, output
  lines = output.splitlines()
  assert f"{metrics_path}: its last line was cut short" in output
  # It resumed from a checkpoint (saved after epoch 1 at the earliest, and after no epoch that
  # had not ended), at the epoch after it; the first epoch it then runs is that one.
  resumed_at = [int(match.group(1)) for match in (
      re.fullmatch(rf"Resuming {re.escape(str(tmp_path))} at epoch (\d+)\.", line)
      for line in lines) if match]
  assert len(resumed_at) == 1 and 2 <= resumed_at[0] <= epochs_before_kill + 1, resumed_at
  first_epoch = next(line for line in lines if re.match(r"epoch +\d+/10 loss ", line))
  assert first_epoch.startswith(f"epoch {resumed_at[0]:3d}/10 loss "), first_epoch
  # What the run says before and during its epochs (output is a pipe: plain progress lines).
  order = [next(i for i, line in enumerate(lines) if line.startswith(prefix)) for prefix in
           ("scene ip: 145x145 pixels, 200 bands", "split blocks, partition 1: train ",
            "model da_imrn: ", "compiling the training epoch", "compiled in ")]
  assert order == sorted(order)
  assert lines[order[2]] == (f"model da_imrn: {_da_imrn_params(width=0.25):,} parameters "
                             "(with BatchNorm statistics)")
  progress_lines = [line for line in lines if line.startswith("epoch ") and "patches/s" in line]
  assert progress_lines and all("steps" in line and "ETA" in line for line in progress_lines)
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["confusion_matrix"] == reference["confusion_matrix"]
  assert results["best_round"] == reference["best_round"]
  ours = [json.loads(line) for line in metrics_path.read_text().splitlines()]
  theirs = [json.loads(line) for line in (reference_dir / "metrics.jsonl").read_text().splitlines()]
  assert [e["round"] for e in ours] == [e["round"] for e in theirs]
  np.testing.assert_allclose([e["loss"] for e in ours], [e["loss"] for e in theirs], rtol=1e-6)


@pytest.mark.slow
def test_one_and_eight_devices_agree_through_the_launcher(tmp_path):
  """One epoch of the README's quick run through launch/train.py, its batch sharded over 8 fake
  CPU devices vs 1, with SGD: the same epoch to float tolerance. What that tolerance is was
  measured with `launch/bench.py --mode=drift` (docs/design.md, "Devices and float drift"): the
  per-step losses of 8 devices and of 1 device with the initial parameters moved by one ULP drift
  from the 1-device run alike (2.6e-4 and 2.9e-4 median over the epoch's second half, 8.5e-4 at
  most): the training dynamics amplify any float-level reordering, and 8 devices are one. A
  sharding error (statistics or sums per device, a lost or doubled example) moves the first
  step's loss by far more than that."""
  results = {}
  for devices in (1, 8):
    workdir = tmp_path / f"d{devices}"
    launched = subprocess.run(
        [sys.executable, "launch/train.py", f"--config={RUNLOCAL}", f"--workdir={workdir}",
         "--config.train.epochs=1", "--config.train.optimizer=sgd",
         "--config.train.learning_rate=0.01"], cwd=REPO, capture_output=True, text=True,
        timeout=600, env=subprocess_env(devices))
    assert launched.returncode == 0, launched.stdout[-2000:] + launched.stderr[-3000:]
    results[devices] = (json.loads((workdir / "results.json").read_text()),
                        json.loads((workdir / "metrics.jsonl").read_text().splitlines()[0]))
  (one, one_epoch), (eight, eight_epoch) = results[1], results[8]
  assert one["num_devices"] == 1 and eight["num_devices"] == 8
  assert eight_epoch["loss"] == pytest.approx(one_epoch["loss"], rel=1e-3)
  assert eight_epoch["val_accuracy"] == pytest.approx(one_epoch["val_accuracy"], abs=0.01)
  assert eight["oa"] == pytest.approx(one["oa"], abs=0.01)


def test_nan_loss_stops_with_a_clear_message(tmp_path):
  config = config_util.load_config(RUNLOCAL)
  config.train.epochs = 1
  config.model.width, config.train.augment = 0.125, False  # a shorter epoch: the same check
  config.train.learning_rate = 1e30
  with pytest.raises(FloatingPointError,
                     match="Training loss became nan in epoch 1; stopped. No checkpoint was saved"):
    run.run(config, tmp_path)
  assert not (tmp_path / "results.json").exists()


def test_standardisation_uses_training_pixels_only():
  rng = np.random.default_rng(0)
  cube = rng.normal(5.0, 2.0, (10, 10, 3)).astype(np.float32)
  train = np.zeros((10, 10), np.int32)
  train[:4, :4] = 1
  out = preprocess.standardize(cube, train)
  np.testing.assert_allclose(out[train > 0].mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(out[train > 0].std(0), 1, atol=1e-5)
  changed = cube.copy()
  changed[5:, 5:] += 100.0  # non-training pixels do not move the statistics
  np.testing.assert_allclose(preprocess.standardize(changed, train)[:4, :4], out[:4, :4])


def test_validation_metrics_labelled_and_keras():
  labels = np.zeros((2, 2), np.int32)
  labels[0, 0], labels[1, 1] = 2, 3
  padded = patches.pad_scene(labels, 2)
  origins = np.array([[0, 0]])
  predictions = np.array([[[2, 1], [1, 1]]])  # right on class 2, wrong on class 3, two unlabelled
  assert step.window_accuracy(predictions, padded, origins, 2) == (1, 2)
  # The official metric: all 4 pixels count; unlabelled ones predicted as class 1 are "correct".
  assert step.window_accuracy(predictions, padded, origins, 2, "keras_all_pixels") == (3, 4)


def test_step_progress_redraws_on_a_terminal_and_prints_quarters_otherwise():
  class Stream(io.StringIO):
    def __init__(self, tty):
      super().__init__()
      self._tty = tty

    def isatty(self):
      return self._tty

  for tty in (True, False):
    stream = Stream(tty)
    bar = progress.StepProgress(stream, min_interval=0.0)
    bar.begin("epoch 1/3", steps=8, examples_per_step=16)
    for done in range(1, 9):
      bar.update(done)
    bar.end()
    text = stream.getvalue()
    if tty:
      assert text.count("\r") >= 8 and "8/8 steps" in text
    else:
      assert [line.split("] ")[1].split(" steps")[0] for line in text.splitlines()] == ["2/8", "4/8",
                                                                                  "6/8"]


@pytest.mark.parametrize("spec", ["runlocal", "runlocal,model=ssan"])
def test_a_round_costs_a_few_host_round_trips_and_no_callback(spec, monkeypatch):
  """The program the run trains (run._program, two seeds vmapped) runs a round of many steps as
  at most MAX_CHUNKS chunk calls, each read once by the host (the bar drawn after it, its last
  update at the round's last step), and the chunk's program holds no host callback (the
  persistent cache keeps no program that has one). The chunks give the round that one chunk of
  all its steps gives."""
  config = config_util.load_config(f"{REPO / 'configs' / 'ip.py'}:{spec}")
  config.num_seeds = 2
  # A round just long enough for MAX_CHUNKS chunks of 4 steps and more: DA-IMRN without the
  # flipped copies (56 steps), SSAN's round of 40 (its runlocal's is 100).
  if config.model.name == "da_imrn":
    config.model.width, config.train.augment = 0.125, False
  else:
    config.train.steps = config.train.eval_every = 40
  configs = seeds.seed_configs(config)
  scene = data_io.load_config_scene(config)
  splits_ = [split_sources.split_from_config(c, labels=scene)[0] for c in configs]
  family = families.family_of(config.model.name)
  mesh = family.make_mesh(config, 2)
  program, keys, states, _, _ = run._program(config, configs, splits_, scene, family, mesh)
  # The two seeds share a partition: the device holds one copy of the scene, not one per seed.
  image = program.data.cube if config.model.name == "da_imrn" else program.data.patch_image
  assert image.ndim == 3  # (rows, columns, channels): no seeds axis
  round_keys = jnp.stack([seeds.round_key(k, 0) for k in keys])
  assert "callback" not in program.train_chunk.lower(
      states, program.data, round_keys, 1e-3, np.int32(0)).as_text()
  calls, bar = [], []

  def chunk(*args):
    calls.append(int(args[-1]))
    return program.train_chunk(*args)

  states, chunked, finished = loop.train_chunks(program, chunk, states, loop.start(2), round_keys,
                                                1e-3, 2, loop.Hooks(after_chunk=bar.append))
  steps = program.steps_per_round
  assert finished and steps > 4 * program_lib.MAX_CHUNKS
  assert 4 <= len(calls) == len(bar) <= program_lib.MAX_CHUNKS
  assert calls == [c * program.chunk_steps for c in range(len(calls))] and bar[-1] == steps

  monkeypatch.setattr(program_lib, "chunk_steps", lambda steps: steps)  # one chunk: the round
  whole, _, whole_states, _, _ = run._program(config, configs, splits_, scene, family, mesh)
  assert whole.chunks_per_round == 1
  whole_states, whole_losses = loop.train_round(whole, whole_states, round_keys, 1e-3)
  np.testing.assert_allclose(chunked.loss_sum / chunked.loss_count, whole_losses, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(states), jax.tree.leaves(whole_states)):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-5,
                               atol=1e-7)


def test_bad_values_are_refused_before_anything_is_written(tmp_path):
  """validate(config) runs first: every bad value named at once, the workdir never created."""
  config = config_util.load_config(RUNLOCAL)
  config.train.val_metric, config.train.batch_size, config.split.pixel_ratio = "acc", 0, 1.5
  with pytest.raises(config_util.ConfigError) as error:
    run.run(config, tmp_path / "run")
  message = str(error.value)
  assert "train.val_metric='acc' must be one of 'labelled', 'keras_all_pixels'" in message
  assert "train.batch_size=0 must be an integer >= 1" in message
  assert "split.pixel_ratio=1.5 must be a fraction in (0, 1)" in message
  assert not (tmp_path / "run").exists()
  pixel_config = config_util.load_config(f"{REPO / 'configs' / 'ip.py'}:runlocal,model=ssan")
  pixel_config.train.steps = 250
  with pytest.raises(config_util.ConfigError, match="train.steps=250 must be a multiple of "
                                                    "train.eval_every=100"):
    run.run(pixel_config, tmp_path / "pixel")
  assert not (tmp_path / "pixel").exists()


def test_a_scene_that_cannot_load_leaves_no_workdir(tmp_path, monkeypatch):
  """The scene and the splits are made before anything is written: a missing cube ends the run
  with the loader's message, and the corrected rerun in the same workdir is not refused."""
  monkeypatch.setenv("HSI_DATA_DIR", str(tmp_path / "empty"))
  config = config_util.load_config(str(REPO / "configs" / "pu.py") + ":runlocal")
  with pytest.raises(FileNotFoundError, match="fetch_data.py --scene=pu"):
    run.run(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_bad_value_is_one_line_exit_2_and_the_corrected_rerun_runs(tmp_path):
  """Through the launcher: one line on stderr naming the leaf and the fix, status 2, no
  traceback, the workdir untouched; the same command with the value corrected then runs there."""
  workdir = tmp_path / "run"
  quick = [f"--config={RUNLOCAL}", f"--workdir={workdir}", "--config.model.width=0.125",
           "--config.train.epochs=1"]
  bad = subprocess.run([sys.executable, "launch/train.py", *quick, "--config.train.patience=0"],
                       cwd=REPO, capture_output=True, text=True, timeout=300,
                       env=subprocess_env())
  assert bad.returncode == 2, bad.stderr[-2000:]
  assert "Traceback" not in bad.stderr
  assert bad.stderr.strip().splitlines()[-1] == (
      "error: Bad config: train.patience=0 must be an integer >= 1.")
  assert not workdir.exists()
  good = subprocess.run([sys.executable, "launch/train.py", *quick], cwd=REPO,
                        capture_output=True, text=True, timeout=600, env=subprocess_env())
  assert good.returncode == 0, good.stderr[-3000:]
  assert (workdir / "results.json").is_file()
