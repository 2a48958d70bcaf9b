"""DA-IMRN: shapes and parameter counts of the official models, fast convolution forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hsi_jax import config_util, families, models, parallel
from hsi_jax.data import split_files
from hsi_jax.models import attention, blocks, da_imrn, layers, loop_conv

from conftest import REPO

# scene: (patch, bands, classes, official params + batch stats; docs/decisions.md, "DA-IMRN
# network")
OFFICIAL = {"pu": (8, 103, 9, 10_584_693), "sv": (8, 204, 16, 10_580_076),
            "ip": (4, 200, 16, 3_298_960)}


def model_for(scene, arg=None, **overrides):
  config = config_util.load_config(str(REPO / "configs" / f"{scene}.py") + (f":{arg}" if arg else ""))
  config.model.update(overrides)
  return models.build_model(config.model, OFFICIAL[scene][2])


@pytest.mark.parametrize("scene", sorted(OFFICIAL))
def test_parameter_counts_and_output_shape(scene):
  patch, bands, classes, expected = OFFICIAL[scene]
  model = model_for(scene)
  x = jnp.zeros((2, patch, patch, bands))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  assert sum(v.size for v in jax.tree.leaves(variables)) == expected
  # BatchNorm statistics are per band (docs/decisions.md, "BatchNorm axis"): every BN vector has a
  # band-count length.
  bn_sizes = {v.shape[0] for v in jax.tree.leaves(variables["batch_stats"])}
  assert bn_sizes <= {103, 102, 100, 50, 25, 24, 12, 6, 3}
  out = jax.eval_shape(lambda v: model.apply(v, x), variables)
  assert out.shape == (2, patch, patch, classes)


def test_ip_multiscale_option_really_adds_the_spatial_branch():
  patch, bands, _, expected = OFFICIAL["ip"]
  model = model_for("ip", "ip_spatial=multiscale")
  x = jnp.zeros((1, patch, patch, bands))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  count = sum(v.size for v in jax.tree.leaves(variables))
  assert count > expected
  assert variables["params"]["spatial_0"]["branches"]["kernel_1"].shape[:3] == (3, 3, 1)


@pytest.mark.parametrize("kernel,strides,padding", [
    ((1, 1, 1), (1, 1, 2), "VALID"), ((1, 1, 3), (1, 1, 1), "SAME"),
    ((1, 1, 7), (1, 1, 1), "SAME"), ((1, 1, 4), (1, 1, 1), "VALID"),
    ((1, 1, 5), (1, 1, 2), "SAME"), ((3, 3, 1), (1, 1, 1), "SAME"),
    ((7, 7, 1), (1, 1, 1), "SAME"), ((4, 4, 1), (4, 4, 1), "VALID"),
    ((2, 2, 3), (1, 1, 1), "SAME")])
def test_fast_forms_equal_plain_3d_convolution(kernel, strides, padding):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(3, 8, 8, 25, 6)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(*kernel, 6, 5)), jnp.float32)
  fast = layers.conv3d_fast(x, w, strides, padding)
  plain = layers.conv3d_plain(x, w, strides, padding)
  assert fast.shape == plain.shape
  np.testing.assert_allclose(fast, plain, rtol=1e-4, atol=1e-4)
  # Gradients agree too (the training path).
  grad = lambda f: jax.grad(lambda w: jnp.sum(jnp.sin(f(x, w, strides, padding))))(w)  # noqa
  np.testing.assert_allclose(grad(layers.conv3d_fast), grad(layers.conv3d_plain), rtol=1e-3,
                             atol=1e-3)


@pytest.mark.parametrize("bands,taps", [(3, 7), (6, 7), (2, 5), (1, 3)])
def test_band_kernel_longer_than_the_bands(bands, taps):
  """SAME band kernels longer than the bands (DA-IMRN's last stages): the taps that only meet
  padding are dropped, the result is the plain convolution's."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(2, 3, 3, bands, 4)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(1, 1, taps, 4, 5)), jnp.float32)
  loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w, (1, 1, 1), "SAME")))  # noqa: E731
  np.testing.assert_allclose(layers.conv3d_fast(x, w, (1, 1, 1), "SAME"),
                             layers.conv3d_plain(x, w, (1, 1, 1), "SAME"), rtol=1e-4, atol=1e-4)
  for fast, plain in zip(jax.grad(loss(layers.conv3d_fast), (0, 1))(x, w),
                         jax.grad(loss(layers.conv3d_plain), (0, 1))(x, w)):
    np.testing.assert_allclose(fast, plain, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("kernel,padding,chunk_bytes", [
    ((7,), ((3, 3),), None), ((2,), ((0, 0),), None), ((2,), ((1, 0),), None),
    ((5,), ((2, 2),), None), ((3, 3), ((1, 1), (1, 1)), None), ((5, 5), ((2, 2), (2, 2)), None),
    ((5, 5), ((2, 2), (2, 2)), 2000), ((2, 3), ((0, 0), (1, 1)), 2000),
    ((3, 2), ((2, 1), (0, 1)), 2000)])
def test_loop_conv_values_gradients_and_seeds(kernel, padding, chunk_bytes, monkeypatch):
  """loop_conv.conv (own VJP, one convolution per seed under vmap) against lax's convolution:
  values, input and kernel gradients, alone and vmapped over 3 seeds with their own kernels.
  chunk_bytes: a 2-D kernel gradient summed over chunks of the batch (2 of the 10 inputs each)."""
  if chunk_bytes is not None:
    monkeypatch.setattr(loop_conv, "KERNEL_GRAD_CHUNK_BYTES", chunk_bytes)
  rng = np.random.default_rng(4)
  spatial = (12,) if len(kernel) == 1 else (6, 7)
  x = jnp.asarray(rng.normal(size=(3, 10, *spatial, 6)), jnp.float32)  # seeds, N, spatial, Cin
  w = jnp.asarray(rng.normal(size=(3, *kernel, 6, 5)), jnp.float32)
  layout = ("NWC", "WIO", "NWC") if len(kernel) == 1 else ("NHWC", "HWIO", "NHWC")

  def reference(x, w):
    return jax.lax.conv_general_dilated(x, w, (1,) * len(kernel), list(padding),
                                        dimension_numbers=layout)

  def loss(conv):  # weights differ along the first spatial axis: a transposed gradient shows
    def value(x, w):
      y = conv(x, w)
      return jnp.sum(jnp.sin(y) * jnp.arange(y.shape[1]).reshape(1, -1, *[1] * (y.ndim - 2)))
    return value

  ours = lambda x, w: loop_conv.conv(x, w, padding)  # noqa: E731
  for f in (lambda g: g, jax.vmap):  # one seed; three seeds vmapped
    args = (x[0], w[0]) if f is not jax.vmap else (x, w)
    np.testing.assert_allclose(f(ours)(*args), f(reference)(*args), rtol=1e-5, atol=1e-4)
    grads = f(jax.grad(loss(ours), (0, 1)))(*args)
    expected = f(jax.grad(loss(reference), (0, 1)))(*args)
    for got, want in zip(grads, expected):  # float sums in another order: scaled tolerance
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5 * float(jnp.abs(want).max()))


def test_loop_conv_keeps_jax_batching_off_the_cpu(monkeypatch):
  """On other backends the seeds stay JAX's grouped convolution (no unrolled seeds axis): same
  values and gradients, and no per-seed slicing in the program."""
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.normal(size=(3, 10, 12, 6)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 5, 6, 5)), jnp.float32)
  loss = lambda x, w: jnp.sum(jnp.sin(loop_conv.conv(x, w, ((2, 2),))))  # noqa: E731
  on_cpu = jax.vmap(jax.grad(loss, (0, 1)))(x, w)
  assert "feature_group_count = 3" not in jax.jit(jax.vmap(jax.grad(loss, (0, 1)))).lower(
      x, w).as_text()  # on the CPU: one convolution per seed
  monkeypatch.setattr(loop_conv.jax, "default_backend", lambda: "gpu")
  program = jax.jit(jax.vmap(jax.grad(loss, (0, 1)))).lower(x, w).as_text()
  assert "feature_group_count = 3" in program
  for got, want in zip(jax.vmap(jax.grad(loss, (0, 1)))(x, w), on_cpu):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernels,patch", [(da_imrn.SPECTRAL_KERNELS, 3),
                                           (da_imrn.SPATIAL_KERNELS, 8)])
def test_composed_branches_keep_the_parameters_and_equal_the_separate_layers(kernels, patch):
  """A block's branches + fuse in the fast form (spectral: composed into one band convolution;
  spatial: branches and fuse on the folded band images): the same parameter tree and initial
  values as the plain layers, the same output and gradients."""
  x = jnp.asarray(np.random.default_rng(5).normal(size=(2, patch, patch, 16, 8)), jnp.float32)
  fast, plain = (blocks.MultiScaleResidualBlock(4, 8, 2, 1, kernels, fast=f)
                 for f in (True, False))
  variables = fast.init(jax.random.key(0), x, True)
  jax.tree.map(np.testing.assert_array_equal, variables, plain.init(jax.random.key(0), x, True))

  def loss(model):
    return lambda params: jnp.sum(jnp.sin(model.apply(
        {**variables, "params": params}, x, True, mutable=["batch_stats"])[0]))

  np.testing.assert_allclose(loss(fast)(variables["params"]), loss(plain)(variables["params"]),
                             rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4),
               jax.grad(loss(fast))(variables["params"]), jax.grad(loss(plain))(variables["params"]))


@pytest.mark.parametrize("scene", ["ip", "pu"])
def test_whole_model_fast_equals_plain(scene):
  patch, bands, _, _ = OFFICIAL[scene]
  fast, plain = (model_for(scene, width=0.125, attention_hidden=64, fast_conv=f)
                 for f in (True, False))
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, patch, patch, bands)), jnp.float32)
  variables = fast.init(jax.random.key(0), x)
  jax.tree.map(np.testing.assert_array_equal, variables, plain.init(jax.random.key(0), x))
  expected = plain.apply(variables, x)
  np.testing.assert_allclose(fast.apply(variables, x), expected, rtol=1e-4,
                             atol=1e-5 * float(jnp.abs(expected).max()))


@pytest.mark.slow
@pytest.mark.parametrize("scene", ["ip", "pu"])
def test_whole_model_fast_gradients_equal_plain(scene):
  """Training-mode gradients of every parameter, fast against plain, on a 40-band cube (bands 24,
  24, 24, 12, 6, 3 after the stages: band convolutions, im2col with kernels longer than the bands, and
  dropped taps all run; ~1 min each: the plain 3-D backward is slow to compile and run)."""
  patch = OFFICIAL[scene][0]
  strides, kernels = da_imrn.band_schedule(40)
  fast, plain = (model_for(scene, width=0.125, attention_hidden=64, fast_conv=f,
                           band_strides=strides, valid_kernels=kernels) for f in (True, False))
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, patch, patch, 40)), jnp.float32)
  variables = fast.init(jax.random.key(0), x)

  def loss(model):
    return lambda params: jnp.mean(model.apply({**variables, "params": params}, x, train=True,
                                               mutable=["batch_stats"])[0] ** 2)

  for got, want in zip(jax.tree.leaves(jax.grad(loss(fast))(variables["params"])),
                       jax.tree.leaves(jax.grad(loss(plain))(variables["params"]))):
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3 * float(jnp.abs(want).max()))


def test_attention_modules():
  x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 8, 8, 10, 3)), jnp.float32)
  scam = attention.SCAM(hidden=16)
  variables = scam.init(jax.random.key(0), x)
  y = scam.apply(variables, x)
  assert y.shape == x.shape
  ratio = np.asarray(y / x)  # 1 + A with A in (0, 1): attention only ever amplifies
  assert np.all((ratio > 1) & (ratio < 2))
  sam = attention.SAM()
  variables = sam.init(jax.random.key(0), x)
  ratio = np.asarray(sam.apply(variables, x) / x)
  # One weight per band and sample, shared by every pixel and channel of the patch.
  assert np.allclose(ratio, ratio[:, :1, :1, :, :1])


@pytest.mark.parametrize("switch", ["use_scam", "use_sam", "interact"])
def test_ablation_switches_remove_their_modules(switch):
  patch, bands, classes, full = OFFICIAL["ip"]
  x = jnp.zeros((1, patch, patch, bands))
  model = model_for("ip", **{switch: False})
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  names = set(variables["params"])
  if switch in ("use_scam", "interact"):
    assert not any(n.startswith("scam_") for n in names)
  if switch in ("use_sam", "interact"):
    assert not any(n.startswith("sam_") for n in names)
  assert sum(v.size for v in jax.tree.leaves(variables)) < full
  assert jax.eval_shape(lambda v: model.apply(v, x), variables).shape == (1, patch, patch, classes)


def test_da_imrn_programs_hand_convolutions_to_eigen_and_matmuls_to_xnnpack(indian_pines,
                                                                          monkeypatch):
  """The run's DA-IMRN programs compile with models.compiler_options on the CPU: no convolution
  inside a YNNPACK fusion, matmuls still in them (XLA's default, without the options, puts both
  there)."""
  config = config_util.load_config(str(REPO / "configs" / "ip.py") + ":runlocal")
  config.model.width = 0.125
  config.model.ip_spatial = "multiscale"  # a (3, 3, 1) spatial branch: 2-D convolutions
  split, _, _ = split_files.split_from_config(config, labels=indian_pines)
  mesh = parallel.make_mesh()

  def ynn_fusions():
    program = families.family_of("da_imrn").make_program(config, indian_pines, [split], mesh)
    states = program.init(jax.random.split(jax.random.key(0), 1))
    text = program.val_predictions.lower(states, program.data).compile().as_text()
    return [line for line in text.splitlines() if "__ynn_fusion" in line]

  ynn = ynn_fusions()
  assert any("dot_general" in line for line in ynn)
  assert not any("conv_general_dilated" in line for line in ynn)
  monkeypatch.setattr(loop_conv, "compiler_options", lambda: None)
  assert any("conv_general_dilated" in line for line in ynn_fusions())
  monkeypatch.undo()
  assert models.compiler_options(config.model) == loop_conv.CPU_COMPILER_OPTIONS
  config.model.fast_conv = False
  assert models.compiler_options(config.model) is None
  config.model.fast_conv, config.model.ip_spatial = True, "code"  # band convolutions only
  assert models.compiler_options(config.model) is None
  pu = config_util.load_config(str(REPO / "configs" / "pu.py"))
  assert models.compiler_options(pu.model) == loop_conv.CPU_COMPILER_OPTIONS
