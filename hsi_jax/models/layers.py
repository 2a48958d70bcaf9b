"""3-D convolutions on (N, H, W, B, C) tensors, and the seam that chooses how they are computed.

`Conv3D` holds the same parameters as a plain 3-D convolution (kernel (kh, kw, kb, Cin, Cout) and a
bias), so parameter counts and checkpoints match the Keras model; its convolution function is an
attribute, as nn.Conv's `conv_general_dilated` is. `conv_forms(platform, fast)` chooses the
functions once for the devices a program runs on (a `ConvForms`; the families call it with the
mesh's platform and model.fast_conv). The fast 3-D form (docs/design.md, "Performance notes"):
  valid, kb = B -> the bands folded into the channels, then one of the forms below,
  (kh, kw, kb) -> the kb band taps as channels (im2col along the bands), then (kh, kw, 1),
  (1, 1, 1)  -> a matmul over channels (a band stride is a slice),
  (1, 1, k)  -> a 1-D convolution along the bands with the pixels folded into the batch
                (loop_conv; an im2col matmul when k > B),
  (k, k, 1) with stride k, valid -> a matmul over each non-overlapping k x k tile,
  (k, k, 1)  -> a 2-D convolution over space with the bands folded into the batch (loop_conv;
                one matmul over every pixel pair when k exceeds the patch),
  otherwise  -> the plain 3-D convolution.
With fast=False every convolution is the plain one (`PLAIN_FORMS`, the reference in tests).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import FrozenDict

from hsi_jax.models import loop_conv

he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


def he_normal_keras_2_0(key, shape, dtype=jnp.float32):
  """Keras 2.0's he_normal (its `initializers.py`, as TensorFlow 1.2/1.3's
  `tensorflow.contrib.keras` mirrors it): a normal of std sqrt(2 / fan_in) truncated at two
  standard deviations with no correction for the truncation (so the weights' std is 0.88 of
  that; later Keras 2 versions and `he_normal` above divide by 0.8796), and the fan-in of a
  kernel counted, channels-last, from its first two axes and its input channels only (Keras 2.0's
  `_compute_fans`): a (1, 1, k) band kernel on C channels has fan-in C, not k C. A dense kernel's
  fan-in is its first axis."""
  fan_in = shape[0] if len(shape) == 2 else shape[-2] * int(np.prod(shape[:2]))
  return jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype) * jnp.asarray(
      np.sqrt(2.0 / fan_in), dtype)

# Layer initialisations of the frameworks the networks were published in (`initializers`).
INITS = ("he_normal", "he_normal_keras_2_0", "glorot_uniform", "kaiming_normal", "torch_default")


def initializers(scheme: str, fan_in: int) -> tuple[Callable, Callable]:
  """(kernel_init, bias_init) of a convolution or dense layer with `fan_in` inputs per output:
  "he_normal"      Keras' he_normal (truncated normal, std sqrt(2 / fan_in)), zero bias;
  "he_normal_keras_2_0"  Keras 2.0's (he_normal_keras_2_0: no truncation correction, a 3-D
                   kernel's fan-in without its band taps), zero bias;
  "glorot_uniform" Keras' default, zero bias;
  "kaiming_normal" torch.nn.init.kaiming_normal_ (untruncated normal, std sqrt(2 / fan_in)), zero
                   bias (DeepHyperX's weight_init);
  "torch_default"  PyTorch's Conv / Linear reset_parameters: kernel and bias both
                   U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  if scheme == "he_normal":
    return he_normal, nn.initializers.zeros
  if scheme == "he_normal_keras_2_0":
    return he_normal_keras_2_0, nn.initializers.zeros
  if scheme == "glorot_uniform":
    return nn.initializers.glorot_uniform(), nn.initializers.zeros
  if scheme == "kaiming_normal":
    return nn.initializers.variance_scaling(2.0, "fan_in", "normal"), nn.initializers.zeros
  if scheme == "torch_default":
    bound = 1.0 / np.sqrt(fan_in)
    return (nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
            lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound,
                                                                     bound))
  raise ValueError(f"Unknown initialisation {scheme!r}; valid: {', '.join(INITS)}.")


def dense(x, features: int, init: str, name: str):
  """nn.Dense(features) of x (..., F) initialised as `init` (initializers), named `name`."""
  kernel_init, bias_init = initializers(init, x.shape[-1])
  return nn.Dense(features, kernel_init=kernel_init, bias_init=bias_init, name=name)(x)


def conv3d_plain(x, kernel, strides, padding):
  """Reference: lax 3-D convolution of x (N, H, W, B, Cin) with kernel (kh, kw, kb, Cin, Cout)."""
  return jax.lax.conv_general_dilated(x, kernel, strides, padding,
                                      dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))


def conv3d_fast(x, kernel, strides, padding, loop_form: loop_conv.LoopForm):
  """Same result as conv3d_plain, via the cheapest equivalent lower-rank form; `loop_form`: how
  loop_conv runs on the program's platform."""
  kh, kw, kb, cin, cout = kernel.shape
  n, h, w, b, _ = x.shape
  sh, sw, sb = strides
  if padding == "VALID" and kb == b and kb > 1:
    # The kernel spans every band: the bands are channels (SSRN's and DBDA's band-closing layers).
    return conv3d_fast(x.reshape(n, h, w, 1, b * cin), kernel.reshape(kh, kw, 1, kb * cin, cout),
                       (sh, sw, 1), padding, loop_form)
  if kb > 1 and sb == 1 and (kh, kw) != (1, 1):
    # A 3-D kernel: its band taps become channels (im2col along the bands), then a (kh, kw, 1)
    # convolution (HybridSN, the 3-D CNN).
    lo, hi = _pads(kb, padding)
    padded = jnp.pad(x, [(0, 0)] * 3 + [(lo, hi), (0, 0)])
    out = b + lo + hi - kb + 1
    taps = jnp.concatenate([padded[:, :, :, t:t + out] for t in range(kb)], axis=-1)
    return conv3d_fast(taps, kernel.reshape(kh, kw, 1, kb * cin, cout), strides, padding,
                       loop_form)
  tiled = (kh, kw) == (sh, sw) and padding == "VALID" and h % kh == 0 and w % kw == 0
  if kb == 1 and sb == 1 and (kh, kw) != (1, 1) and not tiled:
    return _spatial_conv(x, kernel[:, :, 0], (sh, sw), padding, loop_form)
  if (kh, kw, kb) == (1, 1, 1):
    return pointwise(x[:, ::sh, ::sw, ::sb], kernel[0, 0, 0])
  if (kh, kw) == (1, 1) and (sh, sw) == (1, 1):
    return _band_conv_matmul(x, kernel[0, 0], sb, padding, loop_form)
  if kb == 1 and sb == 1:
    # Non-overlapping spatial tiles (SAM, SCAM's coarse map): one matmul over (kh, kw, Cin).
    tiles = x.reshape(n, h // kh, kh, w // kw, kw, b, cin).transpose(0, 1, 3, 5, 2, 4, 6)
    return pointwise(tiles.reshape(n, h // kh, w // kw, b, kh * kw * cin),
                     kernel.reshape(kh * kw * cin, cout))
  return conv3d_plain(x, kernel, strides, padding)


def _spatial_conv(x, kernel, strides, padding, loop_form):
  """(kh, kw, 1) convolution of x (N, H, W, B, Cin), kernel (kh, kw, Cin, Cout), as a 2-D one
  over the N * B band images."""
  return _unfold_bands(_image_conv(_fold_bands(x), kernel, strides, padding, loop_form), x.shape[3])


def _image_conv(images, kernel, strides, padding, loop_form):
  """2-D convolution of folded band images (N * B, H, W, Cin) with kernel (kh, kw, Cin, Cout): at
  stride 1, loop_conv for a kernel no larger than the images, else one matmul (_dense_conv);
  XLA's own at other strides."""
  kh, kw = kernel.shape[:2]
  if strides == (1, 1):
    pads = (_pads(kh, padding), _pads(kw, padding))
    if _loop_conv_fits(kernel.shape, images.shape):
      return loop_conv.conv(images, kernel, pads, loop_form)
    return _dense_conv(images, kernel, pads)
  return jax.lax.conv_general_dilated(images, kernel, strides, padding,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _dense_conv(images, kernel, pads):
  """Stride-1 2-D convolution of images (N, H, W, Cin) with kernel (kh, kw, Cin, Cout) and
  pads ((lo, hi), (lo, hi)) as one matmul: the kernel laid out as the map from every input pixel
  to every output pixel, (H * W * Cin, Ho * Wo * Cout), zero where a pixel is out of its reach.
  For kernels larger than the images (4 x 4 patches under DA-IMRN's 5 x 5 and 7 x 7 spatial
  branches, a custom scene's default): an output then reads nearly every input, so the map's
  H * W multiply-adds per output pixel and channel pair are about the convolution's kh * kw or
  fewer, while XLA's CPU convolution (its kernel gradient above all) ran ~30x slower than this
  matmul inside a training loop (results/bench.md)."""
  (kh, kw, cin, cout), (n, h, w) = kernel.shape, images.shape[:3]
  rows, cols = _reach(h, kh, *pads[0]), _reach(w, kw, *pads[1])  # (H, Ho, kh), (W, Wo, kw)
  layout = jnp.einsum("iat,jbu,tucd->ijcabd", rows, cols, kernel)  # (H, W, Cin, Ho, Wo, Cout)
  ho, wo = rows.shape[1], cols.shape[1]
  y = images.reshape(n, h * w * cin) @ layout.reshape(h * w * cin, ho * wo * cout)
  return y.reshape(n, ho, wo, cout)


def _reach(size: int, taps: int, lo: int, hi: int) -> np.ndarray:
  """(size, out, taps) one-hot: input position i meets output position o through tap t when
  i = o + t - lo (a stride-1 correlation padded by lo, hi)."""
  out = size + lo + hi - taps + 1
  reach = np.zeros((size, out, taps), np.float32)
  for o, t in np.ndindex(out, taps):
    if 0 <= o + t - lo < size:
      reach[o + t - lo, o, t] = 1
  return reach


def _fold_bands(x):
  """(N, H, W, B, C) -> (N * B, H, W, C): one image per patch and band."""
  n, h, w, b, c = x.shape
  return jnp.moveaxis(x, 3, 1).reshape(n * b, h, w, c)


def _unfold_bands(y, bands: int):
  """(N * B, H', W', C) -> (N, H', W', B, C), the inverse of _fold_bands."""
  return jnp.moveaxis(y.reshape(-1, bands, *y.shape[1:]), 1, 3)


def _loop_conv_fits(kernel_shape, x_shape) -> bool:
  """A (kh, kw, ...) kernel is no larger than the (N, H, W, ...) images (loop_conv's domain)."""
  return kernel_shape[0] <= x_shape[1] and kernel_shape[1] <= x_shape[2]


def _pads(k: int, padding: str) -> tuple[int, int]:
  """(lo, hi) padding of a stride-1 axis with a k-tap kernel, as lax pads 'SAME' / 'VALID'."""
  return ((k - 1) // 2, k // 2) if padding == "SAME" else (0, 0)


def pointwise(x, kernel):
  """x (..., Cin) @ kernel (Cin, Cout) as one 2-D matmul (its gradients stay 2-D matmuls too)."""
  return (x.reshape(-1, x.shape[-1]) @ kernel).reshape(*x.shape[:-1], kernel.shape[-1])


def _band_conv_matmul(x, kernel, stride: int, padding: str, loop_form):
  """(1, 1, k) convolution along the bands, x (N, H, W, B, Cin), kernel (k, Cin, Cout).

  Stride 1 and k <= B: loop_conv.conv (1-D convolutions over the pixels, own gradient).
  Otherwise one matmul over k shifted copies (im2col), after dropping the taps of a 'SAME' kernel
  that can only meet padding (those beyond B - 1 bands from the centre).
  """
  k, cin, cout = kernel.shape
  bands = x.shape[3]
  if padding == "SAME":
    out = -(-bands // stride)
    total = max((out - 1) * stride + k - bands, 0)
    lo, hi = total // 2, total - total // 2
    if stride == 1 and min(lo, hi) >= bands:  # only taps lo - bands + 1 .. lo + bands - 1 meet x
      drop = min(lo, hi) - bands + 1
      kernel, k, lo, hi = kernel[drop:k - drop], k - 2 * drop, lo - drop, hi - drop
  else:
    out = (bands - k) // stride + 1
    lo = hi = 0
  if stride == 1 and k <= bands:
    y = loop_conv.conv(x.reshape(-1, bands, cin), kernel, ((lo, hi),), loop_form)
    return y.reshape(*x.shape[:3], out, cout)
  x = jnp.pad(x, [(0, 0)] * 3 + [(lo, hi), (0, 0)])
  shifted = [x[:, :, :, i:i + (out - 1) * stride + 1:stride] for i in range(k)]
  return pointwise(jnp.concatenate(shifted, axis=-1), kernel.reshape(k * cin, cout))


def conv2d_same_matmul(x, kernel):
  """'SAME', stride-1 2-D convolution as one matmul over the k x k shifted copies (im2col).
  x (N, H, W, Cin), kernel (kh, kw, Cin, Cout) with odd sides. XLA's CPU convolutions run several
  times slower inside a loop body (a training epoch under lax.scan) than this dot does."""
  kh, kw, cin, cout = kernel.shape
  h, w = x.shape[1:3]
  x = jnp.pad(x, [(0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)])
  shifted = [x[:, i:i + h, j:j + w] for i in range(kh) for j in range(kw)]
  return pointwise(jnp.concatenate(shifted, axis=-1), kernel.reshape(kh * kw * cin, cout))


def conv2d_same_plain(x, kernel):
  """Reference: lax's 'SAME', stride-1 2-D convolution of x (N, H, W, Cin), kernel (kh, kw, Cin,
  Cout)."""
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


@dataclasses.dataclass(frozen=True)
class ConvForms:
  """How a program's convolutions are computed: made by conv_forms only, once per program, from
  the platform of the devices it runs on; modules take its functions as attributes.

  conv3d(x (N, H, W, B, Cin), kernel (kh, kw, kb, Cin, Cout), strides, padding)
      -> (N, H', W', B', Cout): Conv3D's and ParallelConvs' convolution.
  conv2d_same(x (N, H, W, Cin), kernel (kh, kw, Cin, Cout)) -> (N, H, W, Cout), 'SAME' and
      stride 1: Conv2DSame's (SSAN's spatial branch).
  fuse_branches: a multi-scale block's branches and its fuse computed as one map (FusedBranches)
      rather than as separate layers (ParallelConvs).
  loop_form: loop_conv's form on the platform (None in the plain forms, which never call it).
  compiler_options: XLA's options (jax.jit's) for programs with 2-D loop_conv convolutions on the
      platform, or None; models.compiler_options gives them to the networks that have them.
  """
  conv3d: Callable
  conv2d_same: Callable
  fuse_branches: bool
  loop_form: loop_conv.LoopForm | None
  compiler_options: Mapping[str, str] | None


PLAIN_FORMS = ConvForms(conv3d=conv3d_plain, conv2d_same=conv2d_same_plain, fuse_branches=False,
                        loop_form=None, compiler_options=None)


@functools.cache
def conv_forms(platform: str, fast: bool) -> ConvForms:
  """The convolution forms of a program whose devices are of `platform` (jax.Device.platform:
  "cpu", "gpu", "tpu"); fast: model.fast_conv. The plain forms do not depend on the platform. The
  fast ones do on the CPU only: seeds unrolled, 2-D kernel gradients in chunks of the batch, and
  loop_conv.CPU_COMPILER_OPTIONS (loop_conv's module docstring says why); elsewhere JAX's grouped
  convolutions, one chunk and jax.jit's default options. One object per (platform, fast)."""
  if not fast:
    return PLAIN_FORMS
  on_cpu = platform == "cpu"
  loop_form = loop_conv.LoopForm(
      unroll_seeds=on_cpu, grad_chunk_bytes=loop_conv.KERNEL_GRAD_CHUNK_BYTES if on_cpu else 0)
  return ConvForms(conv3d=functools.partial(conv3d_fast, loop_form=loop_form),
                   conv2d_same=conv2d_same_matmul, fuse_branches=True, loop_form=loop_form,
                   compiler_options=(FrozenDict(loop_conv.CPU_COMPILER_OPTIONS)
                                     if on_cpu else None))


class Conv2DSame(nn.Module):
  """'SAME' stride-1 2-D convolution with nn.Conv's parameters (kernel (kh, kw, Cin, Cout), bias),
  computed by `conv` (ConvForms.conv2d_same). x (N, H, W, Cin) -> (N, H, W, features)."""
  features: int
  kernel_size: tuple[int, int]
  conv: Callable

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (*self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return self.conv(x, kernel) + bias


def conv_weights(module: nn.Module, features: int, kernel_size, in_features: int,
                 init: str = "he_normal"):
  """Declares a Conv3D's parameters in `module`: kernel (*kernel_size, in, features) and bias
  (features,), initialised as `init` (initializers; Keras' he_normal and zero bias by default);
  same names and order wherever it is called, so the same initial values."""
  kernel_init, bias_init = initializers(init, in_features * int(np.prod(kernel_size)))
  kernel = module.param("kernel", kernel_init, (*kernel_size, in_features, features))
  bias = module.param("bias", bias_init, (features,))
  return kernel, bias


class Conv3D(nn.Module):
  """Conv3D on (N, H, W, B, C), computed by `conv` (ConvForms.conv3d); its parameters initialised
  as `initializer` (initializers: Keras' he_normal kernel and zero bias by default)."""
  features: int
  kernel_size: Sequence[int]
  conv: Callable
  strides: Sequence[int] = (1, 1, 1)
  padding: str = "SAME"
  initializer: str = "he_normal"

  @nn.compact
  def __call__(self, x):
    """x (N, H, W, B, Cin), or a tuple of such arrays whose channels, concatenated, are the input.
    A (1, 1, 1) kernel then runs on each part with its rows of the kernel and sums (no
    concatenated copy: DA-IMRN's stage inputs are a block output and an attended one)."""
    parts = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    widths = [part.shape[-1] for part in parts]
    kernel, bias = conv_weights(self, self.features, self.kernel_size, sum(widths),
                                self.initializer)
    strides = tuple(self.strides)
    if len(parts) > 1 and tuple(self.kernel_size) == (1, 1, 1):
      rows = jnp.split(kernel, np.cumsum(widths)[:-1], axis=3)
      return sum(self.conv(part, w, strides, self.padding) for part, w in zip(parts, rows)) + bias
    x = jnp.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
    return self.conv(x, kernel, strides, self.padding) + bias


class ConvWeights(nn.Module):
  """A Conv3D's parameters without the convolution: `ConvWeights(f, k)(in_features)` ->
  (kernel, bias), the same tree and initial values as `Conv3D(f, k, conv)` would make under that
  name (for layers computed together with another one, as in FusedBranches)."""
  features: int
  kernel_size: Sequence[int]
  initializer: str = "he_normal"

  @nn.compact
  def __call__(self, in_features: int):
    return conv_weights(self, self.features, self.kernel_size, in_features, self.initializer)


def branch_weights(module: nn.Module, features: int, kernel_sizes, in_features: int,
                   init: str = "he_normal"):
  """Declares the parameters of parallel branches in `module`: every `kernel_i` (*kernel_sizes[i],
  in_features, features) initialised as `init` (initializers), then every `bias_i` (features,)
  (names and order fix the initial values: ParallelConvs and FusedBranches hold the same ones)."""
  inits = [initializers(init, in_features * int(np.prod(k))) for k in kernel_sizes]
  kernels = [module.param(f"kernel_{i}", kernel_init, (*k, in_features, features))
             for i, (k, (kernel_init, _)) in enumerate(zip(kernel_sizes, inits))]
  biases = [module.param(f"bias_{i}", bias_init, (features,))
            for i, (_, bias_init) in enumerate(inits)]
  return kernels, biases


def _separate_branches(x, kernels, biases, fuse, conv):
  """Each branch a 'SAME' convolution of x by `conv`, concatenated on channels, then the fuse
  (kernel, bias) as a (1, 1, 1) convolution when given."""
  y = jnp.concatenate([conv(x, w, (1, 1, 1), "SAME") for w in kernels], axis=-1)
  y = y + jnp.concatenate(biases)
  if fuse is None:
    return y
  return conv(y, fuse[0], (1, 1, 1), "VALID") + fuse[1]


class ParallelConvs(nn.Module):
  """Several 'SAME' convolutions of one input by `conv` (ConvForms.conv3d), outputs concatenated
  on channels (the multi-scale branches), optionally followed by the block's (1, 1, 1) fuse
  convolution: separate layers, the plain forms' (and the reference of FusedBranches).

  x (N, H, W, B, Cin) -> (N, H, W, B, n * features), or with `fuse` = (kernel (1, 1, 1, n *
  features, Cout), bias) from ConvWeights -> (N, H, W, B, Cout). Parameters `kernel_i` (k...,
  Cin, features), `bias_i` as separate Conv3D layers would hold them (branch_weights).
  """
  features: int
  kernel_sizes: Sequence[Sequence[int]]
  conv: Callable
  initializer: str = "he_normal"

  @nn.compact
  def __call__(self, x, fuse=None):
    kernels, biases = branch_weights(self, self.features, self.kernel_sizes, x.shape[-1],
                                     self.initializer)
    return _separate_branches(x, kernels, biases, fuse, self.conv)


def _centred(kernel, taps: int):
  """(1, 1, k, Cin, Cout) band kernel zero-padded to `taps` band taps, centred (odd k, taps)."""
  pad = (taps - kernel.shape[2]) // 2
  return jnp.pad(kernel, [(0, 0), (0, 0), (pad, pad), (0, 0), (0, 0)])


class FusedBranches(nn.Module):
  """ParallelConvs' branches and the block's (1, 1, 1) fuse computed as one linear map, in the
  fast forms (ConvForms.fuse_branches): the same parameters, values and gradients as ParallelConvs
  with the fuse. x (N, H, W, B, Cin), fuse = (kernel (1, 1, 1, n * features, Cout), bias) ->
  (N, H, W, B, Cout); `loop_form`: loop_conv's form on the program's platform.

  - Band kernels (1, 1, k) only: the two maps composed (there is no activation between them) into
    one (1, 1, max k) convolution Cin -> Cout whose tap t is sum_i W_i[t] @ Wfuse_i, when it costs
    no more multiply-adds per position (max k * Cin * Cout against sum k_i * Cin * features +
    n * features * Cout; for the spectral blocks 7 C^2 against 9 C^2). The composed kernel is made
    from the parameters at every call (batch-independent).
  - Spatial kernels (k, k, 1): branches and fuse on the folded band images.
  - Otherwise the separate layers in their fast forms.
  """
  features: int
  kernel_sizes: Sequence[Sequence[int]]
  loop_form: loop_conv.LoopForm
  initializer: str = "he_normal"

  @nn.compact
  def __call__(self, x, fuse):
    kernels, biases = branch_weights(self, self.features, self.kernel_sizes, x.shape[-1],
                                     self.initializer)
    if self._composes(x.shape[-1], fuse[0].shape[-1]):
      return self._composed(x, kernels, biases, *fuse)
    if self._folds():
      return self._folded(x, kernels, biases, *fuse)
    return _separate_branches(x, kernels, biases, fuse, self._conv3d)

  def _conv3d(self, x, kernel, strides, padding):
    return conv3d_fast(x, kernel, strides, padding, self.loop_form)

  def _composes(self, cin: int, cout: int) -> bool:
    if not all(tuple(k[:2]) == (1, 1) and k[2] % 2 for k in self.kernel_sizes):
      return False
    taps = [k[2] for k in self.kernel_sizes]
    separate = sum(taps) * cin * self.features + len(taps) * self.features * cout
    return max(taps) * cin * cout <= separate

  def _folds(self) -> bool:
    return (all(k[2] == 1 for k in self.kernel_sizes)
            and any(tuple(k[:2]) != (1, 1) for k in self.kernel_sizes))

  def _folded(self, x, kernels, biases, fuse_kernel, fuse_bias):
    """Spatial branches and the fuse, all on the folded band images: the bands are folded into the
    batch once and unfolded once, after the fuse (fewer channels than the branches' concat), so
    the backward pass transposes one gradient instead of one per branch and their sum."""
    folded = _fold_bands(x)
    y = jnp.concatenate([_image_conv(folded, w[:, :, 0], (1, 1), "SAME", self.loop_form) + b
                         for w, b in zip(kernels, biases)], axis=-1)
    return _unfold_bands(pointwise(y, fuse_kernel[0, 0, 0]) + fuse_bias, x.shape[3])

  def _composed(self, x, kernels, biases, fuse_kernel, fuse_bias):
    taps = max(w.shape[2] for w in kernels)
    parts = jnp.split(fuse_kernel[0, 0, 0], len(kernels))  # Wfuse_i (features, Cout)
    kernel = sum(jnp.einsum("abtcf,fo->abtco", _centred(w, taps), part)
                 for w, part in zip(kernels, parts))
    bias = sum(b @ part for b, part in zip(biases, parts)) + fuse_bias
    return self._conv3d(x, kernel, (1, 1, 1), "SAME") + bias


def band_batch_norm(train: bool, momentum: float, epsilon: float, name=None):
  """Keras BatchNormalization(axis=3): statistics per BAND index (docs/decisions.md, "BatchNorm
  axis"), reduced over N, H, W, C; momentum and epsilon from the config (model.bn_momentum,
  model.bn_epsilon)."""
  return nn.BatchNorm(use_running_average=not train, axis=3, momentum=momentum, epsilon=epsilon,
                      name=name)


def upsample(x, factor: int):
  """Nearest-neighbour upsampling of the two spatial axes of (N, H, W, B, C)."""
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)
