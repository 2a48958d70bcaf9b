"""DA-IMRN: shapes and parameter counts of the official models, fast convolution forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hsi_jax import config_util, families, models, parallel
from hsi_jax.data import split_sources
from hsi_jax.models import attention, blocks, da_imrn, layers, loop_conv

from conftest import REPO

# scene: (patch, bands, classes, official params + batch stats; docs/decisions.md, "DA-IMRN
# network")
OFFICIAL = {"pu": (8, 103, 9, 10_584_693), "sv": (8, 204, 16, 10_580_076),
            "ip": (4, 200, 16, 3_298_960)}
# The forms a program on this machine's devices gets, and the plain reference.
FAST = layers.conv_forms(jax.devices()[0].platform, True)
PLAIN = layers.conv_forms(jax.devices()[0].platform, False)
ON_CPU = jax.devices()[0].platform == "cpu"


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
  fast = FAST.conv3d(x, w, strides, padding)
  plain = PLAIN.conv3d(x, w, strides, padding)
  assert fast.shape == plain.shape
  np.testing.assert_allclose(fast, plain, rtol=1e-4, atol=1e-4)
  # Gradients agree too (the training path).
  grad = lambda f: jax.grad(lambda w: jnp.sum(jnp.sin(f(x, w, strides, padding))))(w)  # noqa
  np.testing.assert_allclose(grad(FAST.conv3d), grad(PLAIN.conv3d), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("bands,taps", [(3, 7), (6, 7), (2, 5), (1, 3)])
def test_band_kernel_longer_than_the_bands(bands, taps):
  """SAME band kernels longer than the bands (DA-IMRN's last stages): the taps that only meet
  padding are dropped, the result is the plain convolution's."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(2, 3, 3, bands, 4)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(1, 1, taps, 4, 5)), jnp.float32)
  loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w, (1, 1, 1), "SAME")))  # noqa: E731
  np.testing.assert_allclose(FAST.conv3d(x, w, (1, 1, 1), "SAME"),
                             PLAIN.conv3d(x, w, (1, 1, 1), "SAME"), rtol=1e-4, atol=1e-4)
  for fast, plain in zip(jax.grad(loss(FAST.conv3d), (0, 1))(x, w),
                         jax.grad(loss(PLAIN.conv3d), (0, 1))(x, w)):
    np.testing.assert_allclose(fast, plain, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("kernel", [(5, 5, 1), (7, 7, 1), (9, 9, 1), (5, 3, 1)])
def test_spatial_kernels_larger_than_the_patch_are_one_matmul(kernel):
  """(k, k, 1) kernels larger than 4 x 4 patches (a custom scene's default patch under DA-IMRN's
  spatial branches; 9 x 9 has taps that meet only padding): the plain convolution's values and
  gradients, alone and with 3 seeds vmapped, computed with no convolution in the program."""
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.normal(size=(3, 2, 4, 4, 5, 6)), jnp.float32)  # seeds, N, H, W, B, Cin
  w = jnp.asarray(rng.normal(size=(3, *kernel, 6, 5)), jnp.float32)

  def loss(conv):  # weights differ along H: a transposed map shows
    return lambda x, w: jnp.sum(jnp.sin(conv(x, w, (1, 1, 1), "SAME"))
                                * jnp.arange(4.0).reshape(1, 4, 1, 1, 1))

  for f in (lambda g: g, jax.vmap):
    args = (x[0], w[0]) if f is not jax.vmap else (x, w)
    value = {forms: f(lambda x, w, c=forms.conv3d: c(x, w, (1, 1, 1), "SAME"))
             for forms in (FAST, PLAIN)}
    grad = {forms: f(jax.grad(loss(forms.conv3d), (0, 1))) for forms in (FAST, PLAIN)}
    np.testing.assert_allclose(value[FAST](*args), value[PLAIN](*args), rtol=1e-4, atol=1e-4)
    for got, want in zip(grad[FAST](*args), grad[PLAIN](*args)):
      np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * float(jnp.abs(want).max()))
    assert "convolution" not in jax.jit(grad[FAST]).lower(*args).as_text()


@pytest.mark.parametrize("kernel,padding,chunk_bytes", [
    ((7,), ((3, 3),), 0), ((2,), ((0, 0),), 0), ((2,), ((1, 0),), 0),
    ((5,), ((2, 2),), 0), ((3, 3), ((1, 1), (1, 1)), 0), ((5, 5), ((2, 2), (2, 2)), 0),
    ((5, 5), ((2, 2), (2, 2)), 2000), ((2, 3), ((0, 0), (1, 1)), 2000),
    ((3, 2), ((2, 1), (0, 1)), 2000)])
def test_loop_conv_values_gradients_and_seeds(kernel, padding, chunk_bytes):
  """loop_conv.conv (own VJP, one convolution per seed under vmap) against lax's convolution:
  values, input and kernel gradients, alone and vmapped over 3 seeds with their own kernels.
  chunk_bytes: a 2-D kernel gradient summed over chunks of the batch (2 of the 10 inputs each)."""
  form = loop_conv.LoopForm(unroll_seeds=True, grad_chunk_bytes=chunk_bytes)
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

  ours = lambda x, w: loop_conv.conv(x, w, padding, form)  # noqa: E731
  for f in (lambda g: g, jax.vmap):  # one seed; three seeds vmapped
    args = (x[0], w[0]) if f is not jax.vmap else (x, w)
    np.testing.assert_allclose(f(ours)(*args), f(reference)(*args), rtol=1e-5, atol=1e-4)
    grads = f(jax.grad(loss(ours), (0, 1)))(*args)
    expected = f(jax.grad(loss(reference), (0, 1)))(*args)
    for got, want in zip(grads, expected):  # float sums in another order: scaled tolerance
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5 * float(jnp.abs(want).max()))


def test_the_platform_chooses_unrolled_or_grouped_seeds():
  """The CPU's loop form unrolls the seeds (one convolution per seed); other platforms' keep JAX's
  grouped convolution (no unrolled seeds axis): same values and gradients. Only the programs'
  text is compared, so this holds on any backend."""
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.normal(size=(3, 10, 12, 6)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 5, 6, 5)), jnp.float32)
  grads = {}
  for platform in ("cpu", "gpu"):
    form = layers.conv_forms(platform, True).loop_form
    seeds = jax.vmap(jax.grad(lambda x, w: jnp.sum(jnp.sin(loop_conv.conv(  # noqa: B023
        x, w, ((2, 2),), form))), (0, 1)))
    grouped = "feature_group_count = 3" in jax.jit(seeds).lower(x, w).as_text()
    assert grouped == (platform != "cpu"), platform
    grads[platform] = seeds(x, w)
  for got, want in zip(grads["gpu"], grads["cpu"]):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv_forms_follow_the_platform_and_the_network():
  """conv_forms(platform, fast) is the one choice: the CPU's fast forms unroll seeds, chunk 2-D
  kernel gradients and carry loop_conv's XLA options, which models.compiler_options gives to
  DA-IMRN networks with 2-D spatial convolutions only; other platforms' and the plain forms
  carry none."""
  cpu, gpu = layers.conv_forms("cpu", True), layers.conv_forms("gpu", True)
  assert cpu.loop_form == loop_conv.LoopForm(True, loop_conv.KERNEL_GRAD_CHUNK_BYTES)
  assert gpu.loop_form == loop_conv.LoopForm(False, 0)
  assert cpu.fuse_branches and gpu.fuse_branches and not layers.PLAIN_FORMS.fuse_branches
  assert cpu.conv2d_same is gpu.conv2d_same is layers.conv2d_same_matmul
  assert layers.conv_forms("cpu", False) is layers.conv_forms("gpu", False) is layers.PLAIN_FORMS
  config = config_util.load_config(str(REPO / "configs" / "ip.py") + ":ip_spatial=multiscale")
  assert models.compiler_options(config.model, cpu) == loop_conv.CPU_COMPILER_OPTIONS
  assert models.compiler_options(config.model, gpu) is None
  assert models.compiler_options(config.model, layers.PLAIN_FORMS) is None
  config.model.multiscale = False  # the (1, 1, 1) branch only: band convolutions
  assert models.compiler_options(config.model, cpu) is None
  ip = config_util.load_config(str(REPO / "configs" / "ip.py"))  # the code's: no 2-D convolution
  assert models.compiler_options(ip.model, cpu) is None
  pu = config_util.load_config(str(REPO / "configs" / "pu.py"))
  assert models.compiler_options(pu.model, cpu) == loop_conv.CPU_COMPILER_OPTIONS
  ssan = config_util.load_config(str(REPO / "configs" / "pu.py") + ":model=ssan")
  assert models.compiler_options(ssan.model, cpu) is None


def test_conv3d_of_channel_parts_equals_conv3d_of_their_concatenation():
  """Conv3D on a tuple of parts (a (1, 1, 1) kernel runs on each part with its rows and sums)
  equals Conv3D on the concatenated channels, in both forms; any other kernel concatenates."""
  rng = np.random.default_rng(7)
  parts = tuple(jnp.asarray(rng.normal(size=(2, 3, 3, 6, c)), jnp.float32) for c in (4, 3))
  whole = jnp.concatenate(parts, axis=-1)
  for forms in (FAST, PLAIN):
    for kernel, strides in (((1, 1, 1), (1, 1, 2)), ((1, 1, 3), (1, 1, 1))):
      conv = layers.Conv3D(5, kernel, forms.conv3d, strides)
      variables = conv.init(jax.random.key(0), parts)
      np.testing.assert_allclose(conv.apply(variables, parts), conv.apply(variables, whole),
                                 rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernels,patch", [(da_imrn.SPECTRAL_KERNELS, 3),
                                           (da_imrn.SPATIAL_KERNELS, 8),
                                           (da_imrn.SPATIAL_KERNELS, 4)])
def test_composed_branches_keep_the_parameters_and_equal_the_separate_layers(kernels, patch):
  """A block's branches + fuse in the fast form (spectral: composed into one band convolution;
  spatial: branches and fuse on the folded band images): the same parameter tree and initial
  values as the plain layers, the same output and gradients."""
  x = jnp.asarray(np.random.default_rng(5).normal(size=(2, patch, patch, 16, 8)), jnp.float32)
  fast, plain = (blocks.MultiScaleResidualBlock(4, 8, 2, 1, kernels, forms, 0.99, 1e-6)
                 for forms in (FAST, PLAIN))
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
  # Every layer got the fast forms: no 3-D convolution left in the program.
  three_d = "dim_numbers = [b, 0, 1, 2, f]"
  assert three_d in jax.jit(plain.apply).lower(variables, x).as_text()
  assert three_d not in jax.jit(fast.apply).lower(variables, x).as_text()


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
  scam = attention.SCAM(FAST.conv3d, hidden=16)
  variables = scam.init(jax.random.key(0), x)
  y = scam.apply(variables, x)
  assert y.shape == x.shape
  ratio = np.asarray(y / x)  # 1 + A with A in (0, 1): attention only ever amplifies
  assert np.all((ratio > 1) & (ratio < 2))
  sam = attention.SAM(FAST.conv3d)
  variables = sam.init(jax.random.key(0), x)
  ratio = np.asarray(sam.apply(variables, x) / x)
  # One weight per band and sample, shared by every pixel and channel of the patch.
  assert np.allclose(ratio, ratio[:, :1, :1, :, :1])


def test_keras_2_0_he_normal_counts_the_fans_and_scale_keras_2_0_did():
  """he_normal_keras_2_0 (Keras 2.0's he_normal): std 0.8796 x sqrt(2 / fan_in), fan_in from the
  kernel's first two axes and its input channels, so a (1, 1, 7) band kernel starts sqrt(7) x
  0.8796 = 2.33 times as large as he_normal's; a (3, 3, 1) one 0.88 times."""
  key = jax.random.key(0)
  for shape, fan_in, taps in (((1, 1, 7, 64, 64), 64, 7), ((3, 3, 1, 64, 64), 9 * 64, 1),
                              ((256, 64), 256, 1)):
    new = np.asarray(layers.he_normal_keras_2_0(key, shape))
    assert new.std() == pytest.approx(0.8796 * np.sqrt(2 / fan_in), rel=0.03)
    assert np.abs(new).max() <= 2 * np.sqrt(2 / fan_in)  # truncated at two standard deviations
    later = np.asarray(layers.he_normal(key, shape))
    np.testing.assert_allclose(new, later * 0.87962566 * np.sqrt(taps), rtol=1e-5)


def test_the_initializer_option_reaches_every_convolution_of_da_imrn():
  """model.initializer on a narrow DA-IMRN: every convolution kernel (blocks, branches, fuses,
  attention, classifier) is drawn from the same normal draw as under he_normal, scaled by 0.8796
  x sqrt(band taps); SCAM's dense layers and every bias are as before."""
  strides, kernels = da_imrn.band_schedule(24)
  x = jnp.ones((1, 4, 4, 24))
  params = [jax.jit(da_imrn.DAIMRN(
      num_classes=5, stage_features=((2, 4),) * 6, band_strides=strides, valid_kernels=kernels,
      spectral_kernels=((1, 1, 3), (1, 1, 7)), attention_hidden=4, forms=FAST,
      initializer=init).init)(jax.random.key(0), x)["params"]
      for init in ("he_normal", "he_normal_keras_2_0")]
  scaled = 0
  for (path, before), after in zip(*(jax.tree_util.tree_flatten_with_path(p)[0] for p in params),
                                   strict=True):
    after = after[1]
    name = jax.tree_util.keystr(path)
    if "kernel" in name and "mlp" not in name:
      np.testing.assert_allclose(after, before * 0.87962566 * np.sqrt(before.shape[2]), rtol=1e-5,
                                 err_msg=name)
      scaled += 1
    else:
      np.testing.assert_array_equal(after, before, err_msg=name)
  assert scaled > 6 * 8  # each stage: 2 blocks x (entry, branches, fuse, valid) and attention


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


@pytest.mark.skipif(not ON_CPU, reason="XLA's CPU backend and its YNNPACK fusions")
def test_da_imrn_programs_hand_convolutions_to_eigen_and_matmuls_to_xnnpack(indian_pines,
                                                                          monkeypatch):
  """The run's DA-IMRN programs on a CPU mesh compile with the CPU forms' options: no
  convolution inside a YNNPACK fusion, matmuls still in them (XLA's default, without the options,
  puts both there)."""
  config = config_util.load_config(str(REPO / "configs" / "ip.py") + ":runlocal,ip_spatial=multiscale")
  config.model.width = 0.125  # the multi-scale option's (3, 3, 1) branch: 2-D convolutions
  split, _, _ = split_sources.split_from_config(config, labels=indian_pines)
  mesh = parallel.make_mesh()

  def ynn_fusions():
    program = families.family_of("da_imrn").make_program(config, indian_pines, [split], mesh)
    states = program.init(jax.random.split(jax.random.key(0), 1))
    text = program.val_predictions.lower(states, program.data).compile().as_text()
    return [line for line in text.splitlines() if "__ynn_fusion" in line]

  ynn = ynn_fusions()
  assert any("dot_general" in line for line in ynn)
  assert not any("conv_general_dilated" in line for line in ynn)
  monkeypatch.setattr(models, "compiler_options", lambda model_config, forms: None)
  assert any("conv_general_dilated" in line for line in ynn_fusions())
