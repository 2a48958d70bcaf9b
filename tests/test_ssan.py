"""SSAN and its comparison rows: the network, its inputs, both protocols, whole runs on real IP."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.decomposition import PCA

from hsi_jax import benchmark, config_util, loop, models, parallel, run
from hsi_jax.data import audit, pixel_inputs, split_files, split_sources
from hsi_jax.models import layers, ssan
from hsi_jax.families import pixels
from hsi_jax.train import optim, pixel_step

from conftest import REPO, subprocess_env

IP = str(REPO / "configs" / "ip.py")


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("bands", [102, 103, 200])
def test_ssan_parameter_count_is_the_official_graph(bands):
  config = config_util.load_config(str(REPO / "configs" / "pc.py"))
  model = models.build_model(config.model, 9)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, bands)),
                                                jnp.zeros((1, 27, 27, 4))))
  assert _count(variables) == 5_434_176  # independent of the band count


def _ssan_forward_macs(model, size, components, bands, classes):
  """Multiply-adds of one SSAN forward pass per patch, layer by layer from the config's widths
  (the BiGRU's recurrent step counted once: XLA's cost analysis counts a scan's body once)."""
  units, attention = model.gru_units, model.attention_size
  spectral = (2 * bands * 3 * units                      # input parts of [x, h] W, both directions
              + 2 * (units * 2 * units + units * units)  # one recurrent step, both directions
              + bands * 2 * units * attention + bands * attention + bands * 2 * units  # attention
              + 2 * units * classes)
  spatial, side, channels = size * size * components, size, components  # pixel mask
  for features in model.conv_features:  # 5x5 SAME convolution, then 2x2 SAME max-pool
    spatial += side * side * 5 * 5 * channels * features
    side, channels = -(-side // 2), features
  spatial += side * side * channels * model.fc_units + model.fc_units * classes
  shared, fused = model.fusion_units
  return spectral + spatial + 2 * classes * shared + 2 * shared * fused + fused * classes


def test_bench_reports_the_ssan_parameter_count(monkeypatch):
  """bench's default mode on SSAN, on the real clock: the official graph's parameters, XLA's
  FLOPs against the layers' own count, and rates from what the timer measured (the real _timed
  and _flops, watched; how _timed times is tests/test_bench.py's)."""
  config = config_util.load_config(str(REPO / "configs" / "pc.py") + ":model=ssan")
  config.model.gru_units = 512
  timings, flops = [], []
  timed, counted = benchmark._timed, benchmark._flops

  def watched_timed(compiled, args, steps, warmup, chain=False):
    seconds = timed(compiled, args, steps, warmup, chain)
    timings.append(((steps, warmup, chain), seconds))
    return seconds

  def watched_flops(fn, args):
    flops.append(counted(fn, args))
    return flops[-1]

  monkeypatch.setattr(benchmark, "_timed", watched_timed)
  monkeypatch.setattr(benchmark, "_flops", watched_flops)
  figures = benchmark.benchmark(config, steps=3, warmup=1, infer_batch=8, loop_steps=2)
  assert figures["num_params"] == 5_434_176 and figures["batch_size"] == 128
  # Two programs timed, 3 calls each after 1 warm-up: the train loop (each call continuing from
  # the previous call's state), then inference.
  ((train_calls, train_s), (infer_calls, infer_s)) = timings
  assert train_calls == (3, 1, True) and infer_calls == (3, 1, False)
  # Patches per second: a timed train call is loop_steps=2 steps of the batch of 128; an inference
  # call labels infer_batch=8 patches.
  assert figures["patches_per_s"] == round(2 * 128 / train_s, 2)
  assert figures["infer_patches_per_s"] == round(8 / infer_s, 2)
  # XLA's FLOPs against the layers' own count: a train step is a forward pass and two backward
  # matmuls per layer (3 x 2 FLOPs per multiply-add), inference the forward pass alone.
  macs = _ssan_forward_macs(config.model, 27, 4, bands=102, classes=9)
  train_flops, infer_flops = flops
  assert train_flops / 128 == pytest.approx(6 * macs, rel=0.05)
  assert infer_flops / 8 == pytest.approx(2 * macs, rel=0.05)
  assert figures["train_gflop_per_patch"] == round(train_flops / 128 / 1e9, 3)
  assert figures["train_gflop_per_s"] == round(train_flops / (train_s / 2) / 1e9, 1)
  assert figures["infer_gflop_per_s"] == round(infer_flops / infer_s / 1e9, 1)


@pytest.mark.parametrize("name", list(ssan.VARIANTS))
def test_output_shapes_of_every_row(name):
  config = config_util.load_config(f"{IP}:runlocal,model={name}")
  model = models.build_model(config.model, 16)
  rng = np.random.default_rng(0)
  spectrum = jnp.asarray(rng.uniform(size=(3, 200)), jnp.float32)
  patch = jnp.asarray(rng.uniform(size=(3, 27, 27, 4)), jnp.float32)
  variables = model.init(jax.random.key(0), spectrum, patch)
  logits = model.apply(variables, spectrum, patch, train=True, rngs={"dropout": jax.random.key(1)})
  assert logits.shape == (3, 16) and bool(jnp.all(jnp.isfinite(logits)))
  names = set(variables["params"])
  assert ("bigru" in names) == ssan.VARIANTS[name][0]
  assert ("conv1" in names) == ssan.VARIANTS[name][1]
  has_attention = bool({"band_attention", "pixel_attention"} & names)
  assert has_attention == ssan.VARIANTS[name][2]


def _tf1_gru(x, gate_kernel, gate_bias, cand_kernel, cand_bias):
  """numpy TF-1 GRUCell over x (N, T, D) with [x, h] kernels; returns all states (N, T, U)."""
  units = cand_bias.shape[0]
  h = np.zeros((x.shape[0], units))
  outputs = []
  sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
  for t in range(x.shape[1]):
    r, u = np.split(sigmoid(np.concatenate([x[:, t], h], 1) @ gate_kernel + gate_bias), 2, axis=1)
    c = np.tanh(np.concatenate([x[:, t], r * h], 1) @ cand_kernel + cand_bias)
    h = u * h + (1 - u) * c
    outputs.append(h)
  return np.stack(outputs, 1)


def test_bigru_matches_numpy_tf1_cell_both_directions():
  x = np.random.default_rng(0).normal(size=(4, 7, 1)).astype(np.float32)
  gru = ssan.BiGRU(5, gate_bias_init=1.0)
  params = gru.init(jax.random.key(0), jnp.asarray(x))["params"]
  # Non-trivial biases so the gate / candidate split and order are checked too.
  rng = np.random.default_rng(1)
  params = {k: jnp.asarray(rng.normal(size=v.shape), jnp.float32) if "bias" in k else v
            for k, v in params.items()}
  out = np.asarray(gru.apply({"params": params}, jnp.asarray(x)))
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  forward = _tf1_gru(x, p["gate_kernel"][0], p["gate_bias"][0], p["candidate_kernel"][0],
                     p["candidate_bias"][0])
  backward = _tf1_gru(x[:, ::-1], p["gate_kernel"][1], p["gate_bias"][1],
                      p["candidate_kernel"][1], p["candidate_bias"][1])[:, ::-1]
  np.testing.assert_allclose(out, np.concatenate([forward, backward], -1), rtol=1e-5, atol=1e-6)


def test_tf1_cell_is_not_the_pytorch_cell():
  rng = np.random.default_rng(2)
  h = rng.normal(size=(3, 4))
  kg, kc = rng.normal(size=(4, 8)), rng.normal(size=(4, 4))
  xg, xc = rng.normal(size=(3, 8)), rng.normal(size=(3, 4))
  tf1 = np.asarray(ssan.gru_cell(xg, xc, h, (kg, kc)))
  r, u = np.split(1 / (1 + np.exp(-(xg + h @ kg))), 2, axis=1)
  torch_style = u * h + (1 - u) * np.tanh(xc + r * (h @ kc))
  np.testing.assert_allclose(tf1, u * h + (1 - u) * np.tanh(xc + (r * h) @ kc), rtol=1e-5, atol=1e-6)
  assert not np.allclose(tf1, torch_style)


def test_band_attention_weights_sum_to_one_over_bands():
  h = jnp.asarray(np.random.default_rng(0).normal(size=(5, 200, 12)), jnp.float32)
  attention = ssan.BandAttention(8, context_init_std=0.1)
  variables = attention.init(jax.random.key(0), h)
  summary, weights = attention.apply(variables, h)
  assert weights.shape == (5, 200) and bool(jnp.all(weights > 0))
  np.testing.assert_allclose(np.asarray(weights.sum(-1)), 1.0, rtol=1e-5)
  np.testing.assert_allclose(summary, jnp.einsum("nt,ntf->nf", weights, h), rtol=1e-5)


def test_pixel_attention_mask_lies_in_the_tanh_sigmoid_range():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 27, 27, 4)) * 1e5, jnp.float32)
  attention = ssan.PixelAttention(mask_init_std=1e-4)
  variables = attention.init(jax.random.key(0), x)
  masked, mask = attention.apply(variables, x)
  low, high = 1 / (1 + np.e), 1 / (1 + np.exp(-1))
  assert float(mask.min()) >= low - 1e-6 and float(mask.max()) <= high + 1e-6
  np.testing.assert_allclose(masked, mask[..., None] * x, rtol=1e-6)


def test_im2col_convolution_equals_lax_convolution_values_and_gradients():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 14, 14, 3)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(5, 5, 3, 6)), jnp.float32)
  reference = lambda x, k: jax.lax.conv_general_dilated(  # noqa: E731
      x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(layers.conv2d_same_matmul(x, kernel), reference(x, kernel),
                             rtol=1e-4, atol=1e-4)
  grads = [jax.grad(lambda x, k: jnp.sum(f(x, k) ** 2), argnums=(0, 1))(x, kernel)
           for f in (layers.conv2d_same_matmul, reference)]
  for fast, plain in zip(*grads):
    np.testing.assert_allclose(fast, plain, rtol=1e-3, atol=1e-3)


def test_pca_and_minmax_fitted_on_the_given_pixels(indian_pines):
  cube = indian_pines.cube
  mask = np.zeros(cube.shape[:2], bool)
  mask[::7, ::5] = True
  projected = pixel_inputs.pca_project(cube, mask, 4)
  reference = PCA(4).fit(cube[mask].astype(np.float64)).transform(
      cube.reshape(-1, cube.shape[-1]).astype(np.float64)).reshape(*cube.shape[:2], 4)
  for k in range(4):  # equal up to the sign of each axis
    scale = np.abs(reference[..., k]).max()
    assert min(np.abs(projected[..., k] - s * reference[..., k]).max() for s in (1, -1)) < \
        1e-3 * scale
  normalised = pixel_inputs.minmax(projected, mask)
  np.testing.assert_allclose(normalised[mask].min(0), 0, atol=1e-6)
  np.testing.assert_allclose(normalised[mask].max(0), 1, atol=1e-6)


def _training_inputs(config, cube, split):
  """The exact arrays the train round feeds the network: every training pixel once."""
  data = pixels.seed_data(config, cube, split, pixels.fit_preprocessing(config, cube, split))
  spectrum, patch = pixel_step.inputs_at(jnp.asarray(data.spectra), jnp.asarray(data.train_patch_image),
                                         jnp.asarray(data.train_pixels), config.data.neighbourhood)
  return np.asarray(spectrum), np.asarray(patch)


@pytest.mark.parametrize("protocol", ["blocks", "pixels"])
def test_no_val_or_test_value_reaches_a_training_input_under_blocks(indian_pines, protocol):
  """Replace every val / test pixel's spectrum by noise: under `blocks` (stats fitted on training
  pixels, non-training region zeroed) the training inputs do not change at all; under `pixels`
  (the SSAN protocol) they do -- its 27 x 27 patches read test pixels."""
  config = config_util.load_config(f"{IP}:model=ssan,protocol={protocol}")
  split, _, _ = split_sources.split_from_config(config, labels=indian_pines)
  held_out = (split.val > 0) | (split.test > 0)
  poisoned = indian_pines.cube.copy()
  poisoned[held_out] = np.random.default_rng(0).uniform(0, 1e4, poisoned[held_out].shape)
  clean_inputs = _training_inputs(config, indian_pines.cube, split)
  poisoned_inputs = _training_inputs(config, poisoned, split)
  if protocol == "blocks":
    for clean, dirty in zip(clean_inputs, poisoned_inputs):
      np.testing.assert_array_equal(clean, dirty)
    data = pixels.seed_data(config, indian_pines.cube, split,
                            pixels.fit_preprocessing(config, indian_pines.cube, split))
    region = pixel_inputs.training_region(split)
    assert not region[held_out].any()
    outside = np.pad(~region, 27, constant_values=True)
    assert np.all(np.asarray(data.train_patch_image)[outside] == 0)
  else:
    assert not np.array_equal(clean_inputs[1], poisoned_inputs[1])
    # ... and the scene-fitted statistics (the code's fit_stats="scene") leak even the spectra.
    config.data.fit_stats = "scene"
    assert not np.array_equal(_training_inputs(config, indian_pines.cube, split)[0],
                              _training_inputs(config, poisoned, split)[0])


def _control_patch(config, cube, split, row):
  """The masked-input control's patch for one test pixel (its own_window_rows row)."""
  data = pixels.seed_data(config, cube, split, pixels.fit_preprocessing(config, cube, split))
  images = (jnp.asarray(data.patch_image), jnp.asarray(data.train_patch_image))
  return np.asarray(pixel_step.own_window_inputs(jnp.asarray(data.spectra), images,
                                                 jnp.asarray(row[None]),
                                                 config.data.neighbourhood)[1][0])


def test_the_control_reads_the_training_region_and_the_test_pixels_own_tile(indian_pines):
  """The masked-input control (the blocks column's control): a test pixel's input reads the
  training region and its own test tile, as a training input reads the training region and its
  own window. Noise everywhere else (other test tiles, validation windows) leaves it unchanged;
  noise in its own tile changes it. Under `pixels` there is no control (inputs read the scene)."""
  config = config_util.load_config(f"{IP}:model=ssan,protocol=blocks")
  split, _, _ = split_sources.split_from_config(config, labels=indian_pines)
  rows = pixel_inputs.own_window_rows(split)
  test_pixels = np.argwhere(split.test > 0)
  np.testing.assert_array_equal(rows[:, :2], test_pixels)
  inside = ((rows[:, 2] <= rows[:, 0]) & (rows[:, 0] < rows[:, 4]) & (rows[:, 3] <= rows[:, 1])
            & (rows[:, 1] < rows[:, 5]))
  assert inside.all() and {tuple(t) for t in rows[:, 2:]} <= {tuple(t) for t in split.test_tiles}
  region = pixel_inputs.training_region(split)
  rng = np.random.default_rng(0)
  for row in rows[np.random.default_rng(1).choice(len(rows), 3, replace=False)]:
    own = np.zeros(region.shape, bool)
    own[row[2]:row[4], row[3]:row[5]] = True
    clean = _control_patch(config, indian_pines.cube, split, row)
    for noisy, changes in ((~(region | own), False), (own, True)):
      poisoned = indian_pines.cube.copy()
      poisoned[noisy] = rng.uniform(0, 1e4, poisoned[noisy].shape)
      assert changes == (not np.array_equal(clean, _control_patch(config, poisoned, split, row)))
  pixels_split, _, _ = split_sources.split_from_config(
      config_util.load_config(f"{IP}:model=ssan,protocol=pixels"), labels=indian_pines)
  assert pixel_inputs.own_window_rows(pixels_split) is None


def test_pixels_protocol_audit_sees_the_27x27_leak(indian_pines):
  config = config_util.load_config(f"{IP}:model=ssan,protocol=pixels")
  assert config.split.patch == 27
  split, _, _ = split_sources.split_from_config(config, labels=indian_pines)
  report = audit.audit(split.train_windows, {"test": split.test}, 16)
  assert sum(report["test"]["inside_training_windows"]) > 0.5 * np.sum(split.test > 0)


def _quick(config):
  config.train.steps, config.train.eval_every = 20, 10
  return config


# Every row under `blocks` (the leakage-free path: zeroed training inputs, the masked-input
# control); SSAN, KNN and SVM under `pixels` too (the random-pixel path, the same code for the
# single-branch rows as for SSAN).
END_TO_END = ([(name, "blocks") for name in list(ssan.VARIANTS) + ["knn", "svm"]]
              + [(name, "pixels") for name in ("ssan", "knn", "svm")])


@pytest.mark.slow
@pytest.mark.parametrize("name, protocol", END_TO_END)
def test_runlocal_end_to_end_on_indian_pines(tmp_path, name, protocol):
  config = config_util.load_config(f"{IP}:runlocal,model={name},protocol={protocol}")
  # 200 steps: enough for every row to beat the majority class below (after 20 steps the
  # spectral rows rnn and arnn score 11-20 % under `pixels`, below its 29 %; after 200, 40-42 %).
  config.train.steps, config.train.eval_every = 200, 100
  if name == "svm":
    config.model.svm_c = (10.0, 100.0)
  results = run.run(config, tmp_path)
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["model"] == name and saved["protocol"] == protocol
  prediction = np.load(tmp_path / "map.npy")
  assert prediction.shape == (145, 145) and prediction.min() >= 1 and prediction.max() <= 16
  assert (tmp_path / "map.png").stat().st_size > 0
  split = split_files.load_split(tmp_path / "split.npz")
  test = split.test > 0
  assert results["oa"] == pytest.approx(np.mean(prediction[test] == split.test[test]))
  assert results["num_test_pixels"] == int(test.sum())
  if name in ("knn", "svm"):
    assert results["oa"] > 0.4 and set(results["chosen"]) <= {"neighbours", "svm_c", "svm_gamma"}
  else:
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [100, 200]
    # Learnt something: above labelling every test pixel with their commonest class (Soybean-
    # mintill: 29 % of the `pixels` test pixels, 23 % of the `blocks` ones), not just above 1 / 16.
    majority = np.bincount(split.test[test]).max() / test.sum()
    assert results["oa"] > majority, (results["oa"], majority)
  if protocol == "blocks" and name not in ("knn", "svm"):  # the masked-input control, from its map
    control = np.load(tmp_path / "control_map.npy")
    assert np.all((control > 0) == test)
    assert results["control"]["oa"] == pytest.approx(np.mean(control[test] == split.test[test]))



def test_vmapped_pixel_round_equals_separate_rounds(indian_pines):
  """The pixels family's program over partitions 1 and 2 (different numbers of training pixels:
  the shorter list is padded) computes each partition's own round: with SGD, the same loss and
  parameters to float precision as the single-seed program of that partition."""
  config = _quick(config_util.load_config(f"{IP}:runlocal,model=acnn,protocol=blocks"))
  config.train.optimizer, config.train.learning_rate = "sgd", 0.01
  splits = [split_sources.split_from_config(config, partition=p, labels=indian_pines)[0] for p in (1, 2)]
  assert np.count_nonzero(splits[0].train) != np.count_nonzero(splits[1].train)
  mesh = parallel.make_mesh()
  together = pixels.make_program(config, indian_pines, splits, mesh)
  keys = jnp.stack([jax.random.key(3), jax.random.key(4)])
  round_keys = jnp.stack([jax.random.key(5), jax.random.key(6)])
  lr = optim.round_learning_rate(config.train, 0)
  states, losses = loop.train_round(together, together.init(keys), round_keys, lr)
  for k in range(2):
    alone = pixels.make_program(config, indian_pines, [splits[k]], mesh)
    state, alone_losses = loop.train_round(alone, alone.init(keys[k][None]), round_keys[k][None],
                                           lr)
    np.testing.assert_allclose(losses[k], alone_losses[0], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(states.params)):
      np.testing.assert_allclose(a[0], b[k], rtol=1e-4, atol=1e-7)


@pytest.mark.slow
def test_pixel_model_seeds_train_in_one_program_through_the_launcher(tmp_path):
  """The README's command for several seeds of a pixel model: one vmapped program, each seed's
  files, and the mean +- std of the runs."""
  result = subprocess.run(
      [sys.executable, "launch/train.py", f"--config={IP}:runlocal,model=acnn",
       "--config.num_seeds=2", "--config.train.steps=200", f"--workdir={tmp_path}"],
      cwd=REPO, capture_output=True, text=True, timeout=600, env=subprocess_env())
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
  assert "2 runs in one vmapped program" in result.stdout
  assert "2 runs: OA " in result.stdout
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["vmapped"] and results["num_seeds"] == 2
  oas = [r["oa"] for r in results["runs"]]
  assert [r["seed"] for r in results["runs"]] == [0, 1] and oas[0] != oas[1]
  assert results["mean"]["oa"] == pytest.approx(np.mean(oas))
  assert results["std"]["oa"] == pytest.approx(np.std(oas))
  for k in range(2):
    for name in ("split.npz", "metrics.jsonl", "curves.png", "map.npy", "results.json"):
      assert (tmp_path / f"seed{k}" / name).is_file(), (k, name)
    lines = (tmp_path / f"seed{k}" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [100, 200]
