"""The zoo's networks (SSRN, HybridSN, DBDA, the 3-D CNN): their size and shapes against the
official implementations, their inputs, their optimisers, and a run of each through the run path."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import REPO, write_custom_scene
from hsi_jax import config_util, models, predict, run
from hsi_jax.data import pixel_inputs, split_files, split_sources
from hsi_jax.families import pixels
from hsi_jax.models import layers
from hsi_jax.train import optim, pixel_step

IP = str(REPO / "configs" / "ip.py")
CUSTOM = str(REPO / "configs" / "custom.py")
IP_BANDS, IP_CLASSES = 200, 16

# (trainable parameters, BatchNorm statistics) of the official implementations for Indian Pines
# (docs/decisions.md, "Zoo parameter counts": how each was found). DBDA's code declares one more
# layer, conv25 (19 parameters), that its forward never calls: 382,347 in its own count.
OFFICIAL_COUNTS = {"ssrn": (346_144, 640), "hybridsn": (5_122_176, 0), "dbda": (382_347 - 19, 792),
                   "cnn3d": (45_196, 0)}


def _network(name, arg="", num_classes=IP_CLASSES, fast=True):
  config = config_util.load_config(f"{IP}:model={name}{arg}")
  model = models.build_model(config.model, num_classes, layers.conv_forms("cpu", fast))
  size, channels = config.data.neighbourhood, pixels.patch_channels(config, IP_BANDS)
  return config, model, (jnp.zeros((2, IP_BANDS)), jnp.zeros((2, size, size, channels)))


def _counts(variables):
  return tuple(sum(x.size for x in jax.tree.leaves(variables.get(c, {})))
               for c in ("params", "batch_stats"))


@pytest.mark.parametrize("name", list(models.ZOO))
def test_parameter_counts_equal_the_official_implementations(name):
  _, model, example = _network(name)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), *example))
  assert _counts(variables) == OFFICIAL_COUNTS[name]


def test_the_3d_cnn_counts_deephyperx_own_17_outputs():
  """DeepHyperX gives Indian Pines 17 outputs (its "Undefined" class too): 46,107 there."""
  _, model, example = _network("cnn3d", num_classes=17)
  assert _counts(jax.eval_shape(lambda: model.init(jax.random.key(0), *example)))[0] == 46_107


# Output shapes of the layers the official code prints (N = 2; (h, w, bands, channels)).
LAYER_SHAPES = {
    "ssrn": {"Conv3D_0": (7, 7, 97, 24), "Conv3D_1": (7, 7, 97, 24), "Conv3D_3": (7, 7, 1, 128),
             "Conv3D_4": (5, 5, 1, 24), "Conv3D_7": (5, 5, 1, 24), "classifier": (16,)},
    "hybridsn": {"conv3d_1": (23, 23, 24, 8), "conv3d_2": (21, 21, 20, 16),
                 "conv3d_3": (19, 19, 18, 32), "conv2d": (17, 17, 64), "dense_1": (256,),
                 "dense_2": (128,), "classifier": (16,)},
    "dbda": {"spectral_conv1": (9, 9, 97, 24), "spectral_conv4": (9, 9, 97, 12),
             "spectral_conv5": (9, 9, 1, 60), "spatial_conv1": (9, 9, 1, 24),
             "spatial_conv4": (9, 9, 1, 12), "query": (9, 9, 7), "value": (9, 9, 60),
             "classifier": (16,)},
    "cnn3d": {"conv1": (3, 3, 198, 20), "pool1": (3, 3, 99, 20), "conv2": (1, 1, 99, 35),
              "pool2": (1, 1, 50, 35), "conv3": (1, 1, 50, 35), "conv4": (1, 1, 26, 35),
              "classifier": (16,)},
}


@pytest.mark.parametrize("name", list(models.ZOO))
def test_forward_shapes_are_the_official_ones(name):
  _, model, example = _network(name)
  logits, variables = jax.eval_shape(lambda: model.init_with_output(
      jax.random.key(0), *example, capture_intermediates=True))
  assert logits.shape == (2, IP_CLASSES)
  captured = variables["intermediates"]
  for layer, shape in LAYER_SHAPES[name].items():
    assert captured[layer]["__call__"][0].shape == (2, *shape), layer


@pytest.mark.parametrize("name", list(models.ZOO))
def test_fast_forms_compute_the_plain_network(name):
  """The fast convolution forms (their band-folding and band-im2col cases are the zoo's) give the
  plain 3-D convolutions' logits and gradients, on the runlocal networks."""
  _, fast, example = _network(name, ",runlocal")
  _, plain, _ = _network(name, ",runlocal", fast=False)
  patch = jax.random.normal(jax.random.key(1), example[1].shape)
  variables = fast.init(jax.random.key(0), example[0], patch)

  def loss(params, model):
    return jnp.sum(model.apply(dict(variables, params=params), example[0], patch) ** 2)

  def value_and_grad(model):
    return jax.jit(jax.value_and_grad(lambda params: loss(params, model)))(variables["params"])

  for a, b in zip(jax.tree.leaves(value_and_grad(fast)), jax.tree.leaves(value_and_grad(plain))):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5 * float(jnp.max(jnp.abs(b))))


@pytest.mark.parametrize("kernel, strides, padding, bands", [
    ((3, 3, 7), (1, 1, 1), "VALID", 30), ((3, 3, 3), (1, 1, 1), "SAME", 20),
    ((1, 1, 24), (1, 1, 1), "VALID", 24), ((3, 3, 16), (1, 1, 1), "VALID", 16),
    ((3, 3, 3), (1, 1, 2), "VALID", 21)])
def test_new_fast_convolution_forms_equal_the_plain_one(kernel, strides, padding, bands):
  x = jax.random.normal(jax.random.key(0), (2, 7, 7, bands, 3))
  w = jax.random.normal(jax.random.key(1), (*kernel, 3, 5))
  fast = layers.conv_forms("cpu", True).conv3d(x, w, strides, padding)
  np.testing.assert_allclose(fast, layers.conv3d_plain(x, w, strides, padding), rtol=1e-5,
                             atol=1e-4)


def test_patch_inputs_are_fitted_on_the_training_pixels(indian_pines):
  """Each scaling of the patch image, fitted on the training pixels of IP partition 1: standard
  bands have mean 0 and std 1 there; whitened components are uncorrelated with unit variance;
  the cube min-max maps the training pixels' extreme values (over every band) to 0 and 1; the
  spectra stay min-max per band."""
  config = config_util.load_config(f"{IP}:model=ssrn")
  split, _, _ = split_sources.split_from_config(config, labels=indian_pines)
  mask = split.train > 0
  cube = indian_pines.cube

  def image(bands, scaling, components=0):
    fitted = pixel_inputs.fit_inputs(cube, mask, components=components, patch_bands=bands,
                                     patch_scaling=scaling)
    return pixel_inputs.apply_inputs(cube, fitted)

  spectra, standard = image("all", "standard")
  assert standard.shape == cube.shape
  np.testing.assert_allclose(standard[mask].mean(0), 0, atol=1e-4)
  np.testing.assert_allclose(standard[mask].std(0), 1, rtol=1e-4)
  assert spectra[mask].min() == 0 and np.isclose(spectra[mask].max(0), 1).all()
  _, whitened = image("pca", "standard", components=30)
  assert whitened.shape == cube.shape[:2] + (30,)
  np.testing.assert_allclose(np.cov(whitened[mask].T, bias=True), np.eye(30), atol=1e-3)
  _, scaled = image("all", "cube_minmax")
  assert scaled[mask].min() == 0 and np.isclose(scaled[mask].max(), 1)
  assert np.isclose(scaled[mask].max(0), 1).sum() < 10  # one range for all bands, not per band
  assert (scaled[~mask].max() > 1) or (scaled[~mask].min() < 0)  # test pixels fitted nothing


def test_a_bundle_from_before_patch_scaling_still_applies(indian_pines):
  mask = np.zeros(indian_pines.cube.shape[:2], bool)
  mask[::7, ::7] = True
  fitted = pixel_inputs.fit_inputs(indian_pines.cube, mask, components=4, patch_bands="pca",
                                   patch_scaling="minmax")
  legacy = {k: v for k, v in fitted.items() if not k.startswith("patch_")}
  legacy.update(pca_low=fitted["patch_shift"], pca_span=fitted["patch_scale"])
  for a, b in zip(pixel_inputs.apply_inputs(indian_pines.cube, fitted),
                  pixel_inputs.apply_inputs(indian_pines.cube, legacy)):
    np.testing.assert_array_equal(a, b)


def _steps(optimizer, params, grads):
  state = optimizer.init(params)
  for g in grads:
    updates, state = optimizer.update(g, state, params)
    params = optax.apply_updates(params, updates)
  return params


def test_the_zoo_optimisers_follow_their_frameworks():
  """Two steps of each recipe against its framework's formula, by hand."""
  p0, grads = np.array([1.0, -2.0]), [np.array([0.5, 0.1]), np.array([-0.2, 0.3])]
  # Keras 2 RMSprop (SSRN): a = rho a + (1 - rho) g^2; p -= lr g / (sqrt(a) + eps).
  train = config_util.load_config(f"{IP}:model=ssrn").train
  p, a = p0.copy(), np.zeros(2)
  for g in grads:
    a = train.rho * a + (1 - train.rho) * g * g
    p = p - train.learning_rate * g / (np.sqrt(a) + train.eps)
  np.testing.assert_allclose(_steps(optim.make_optimizer(train), jnp.asarray(p0), grads), p,
                             rtol=1e-6)
  # Keras Adam with decay (HybridSN): step t's rate lr / (1 + decay t); a large decay to see it.
  train = config_util.load_config(f"{IP}:model=hybridsn").train
  train.step_decay = 0.5
  p, m, v = p0.copy(), np.zeros(2), np.zeros(2)
  for t, g in enumerate(grads, 1):
    m, v = train.b1 * m + (1 - train.b1) * g, train.b2 * v + (1 - train.b2) * g * g
    lr = train.learning_rate / (1 + train.step_decay * (t - 1))
    p = p - lr * (m / (1 - train.b1 ** t)) / (np.sqrt(v / (1 - train.b2 ** t)) + train.eps)
  np.testing.assert_allclose(_steps(optim.make_optimizer(train), jnp.asarray(p0), grads), p,
                             rtol=1e-5)
  # PyTorch SGD with weight decay (the 3-D CNN): g += wd p; p -= lr g.
  train = config_util.load_config(f"{IP}:model=cnn3d").train
  p = p0.copy()
  for g in grads:
    p = p - train.learning_rate * (g + train.weight_decay * p)
  np.testing.assert_allclose(_steps(optim.make_optimizer(train), jnp.asarray(p0), grads), p,
                             rtol=1e-6)


def test_dbdas_cosine_restarts_every_thirty_epochs():
  train = config_util.load_config(f"{IP}:model=dbda").train
  rates = [optim.round_learning_rate(train, r) for r in range(47)]
  assert rates[0] == rates[1] == np.float32(5e-4)
  assert rates[16] == 0 and rates[46] == 0 and rates[31] == np.float32(5e-4)
  assert rates[8] == np.float32(2.5e-4 * (1 + np.cos(np.pi * 7 / 15)))


def test_kernel_l2_is_on_the_convolution_kernels_only():
  """SSRN's l2(1e-4) on its Conv3D kernels: the loss grows by 1e-4 x their squares' sum; its
  Dense kernel and every bias carry none."""
  _, model, example = _network("ssrn", ",runlocal")
  variables = model.init(jax.random.key(0), *example)
  expected = sum(float(jnp.sum(leaf ** 2)) for path, leaf in
                 jax.tree_util.tree_leaves_with_path(variables["params"])
                 if "Conv3D" in jax.tree_util.keystr(path) and path[-1].key == "kernel")
  assert float(pixel_step.kernel_l2_penalty(variables["params"])) == pytest.approx(expected,
                                                                                   rel=1e-6)
  assert expected < sum(float(jnp.sum(x ** 2)) for x in jax.tree.leaves(variables["params"]))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(models.ZOO))
def test_each_network_runs_two_seeds_in_one_program_and_predicts_its_map(name, tmp_path):
  """A quick run of each network (runlocal, two epochs) with a vmapped pair of seeds, through
  the run path, on a small custom scene: each seed's files, metrics recomputed from its map, and
  the seed's bundle (BatchNorm statistics included) predicting its map again."""
  scene = write_custom_scene(tmp_path / "data")
  config = config_util.load_config(
      f"{CUSTOM}:cube={scene['cube']},gt={scene['gt']},model={name},protocol=blocks,runlocal")
  config.num_seeds, config.train.epochs, config.train.patience = 2, 2, 2
  workdir = tmp_path / "run"
  results = run.run(config, workdir)
  assert [r["seed"] for r in results["runs"]] == [0, 1]
  for k, seed_results in enumerate(results["runs"]):
    seed_dir = workdir / f"seed{k}"
    lines = [json.loads(line) for line in (seed_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["round"] for line in lines] == [0, 1]
    prediction = np.load(seed_dir / "map.npy")
    split = split_files.load_split(seed_dir / "split.npz")
    test = split.test > 0
    assert prediction.shape == (47, 53)
    assert seed_results["oa"] == pytest.approx(np.mean(prediction[test] == split.test[test]))
    # The masked-input control (a `blocks` run): classes at the test pixels only, its metrics
    # read from them.
    control = np.load(seed_dir / "control_map.npy")
    assert np.all((control > 0) == test)
    assert seed_results["control"]["oa"] == pytest.approx(np.mean(control[test] == split.test[test]))
    summary = predict.predict(workdir, scene["cube"], tmp_path / f"predicted{k}", seed=k, tile=32)
    np.testing.assert_array_equal(np.load(tmp_path / f"predicted{k}" / "map.npy"), prediction)
    assert summary["no_data_pixels"] == 0
