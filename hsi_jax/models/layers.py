"""3-D convolutions on (N, H, W, B, C) tensors, computed in their fast forms.

`Conv3D` holds the same parameters as a plain 3-D convolution (kernel (kh, kw, kb, Cin, Cout) and a
bias), so parameter counts and checkpoints match the Keras model; only the computation differs
(docs/design.md, "Performance notes"):
  (1, 1, 1)  -> a matmul over channels (a band stride is a slice),
  (1, 1, k)  -> a 1-D convolution along the bands with the pixels folded into the batch,
  (k, k, 1) with stride k, valid -> a matmul over each non-overlapping k x k tile,
  (k, k, 1)  -> a 2-D convolution over space with the bands folded into the batch,
  otherwise  -> the plain 3-D convolution.
`fast=False` always uses the plain 3-D form (the reference in tests).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


def conv3d_plain(x, kernel, strides, padding):
  """Reference: lax 3-D convolution of x (N, H, W, B, Cin) with kernel (kh, kw, kb, Cin, Cout)."""
  return jax.lax.conv_general_dilated(x, kernel, strides, padding,
                                      dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))


def conv3d_fast(x, kernel, strides, padding):
  """Same result as conv3d_plain, via the cheapest equivalent lower-rank form."""
  kh, kw, kb, cin, cout = kernel.shape
  n, h, w, b, _ = x.shape
  sh, sw, sb = strides
  if (kh, kw, kb) == (1, 1, 1):
    return pointwise(x[:, ::sh, ::sw, ::sb], kernel[0, 0, 0])
  if (kh, kw) == (1, 1) and (sh, sw) == (1, 1):
    return _band_conv_matmul(x, kernel[0, 0], sb, padding)
  if kb == 1 and sb == 1 and (kh, kw) == (sh, sw) and padding == "VALID" \
      and h % kh == 0 and w % kw == 0:
    # Non-overlapping spatial tiles (SAM, SCAM's coarse map): one matmul over (kh, kw, Cin).
    tiles = x.reshape(n, h // kh, kh, w // kw, kw, b, cin).transpose(0, 1, 3, 5, 2, 4, 6)
    return pointwise(tiles.reshape(n, h // kh, w // kw, b, kh * kw * cin),
                     kernel.reshape(kh * kw * cin, cout))
  if kb == 1 and sb == 1:
    folded = jnp.moveaxis(x, 3, 1).reshape(n * b, h, w, cin)
    y = jax.lax.conv_general_dilated(folded, kernel[:, :, 0], (sh, sw), padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.moveaxis(y.reshape(n, b, *y.shape[1:]), 1, 3)
  return conv3d_plain(x, kernel, strides, padding)


def pointwise(x, kernel):
  """x (..., Cin) @ kernel (Cin, Cout) as one 2-D matmul (its gradients stay 2-D matmuls too)."""
  return (x.reshape(-1, x.shape[-1]) @ kernel).reshape(*x.shape[:-1], kernel.shape[-1])


def _band_conv_matmul(x, kernel, stride: int, padding: str):
  """(1, 1, k) convolution along the bands as one matmul over k shifted copies (im2col).

  x (N, H, W, B, Cin), kernel (k, Cin, Cout). XLA's CPU 1-D convolutions are slow for these
  shapes (many short sequences); a single (N H W B', k Cin) x (k Cin, Cout) dot is not.
  """
  k, cin, cout = kernel.shape
  bands = x.shape[3]
  if padding == "SAME":
    out = -(-bands // stride)
    total = max((out - 1) * stride + k - bands, 0)
    x = jnp.pad(x, [(0, 0)] * 3 + [(total // 2, total - total // 2), (0, 0)])
  else:
    out = (bands - k) // stride + 1
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


class Conv2DSame(nn.Module):
  """'SAME' stride-1 2-D convolution with nn.Conv's parameters (kernel (kh, kw, Cin, Cout), bias);
  computed as conv2d_same_matmul, or by lax.conv_general_dilated with `fast=False`."""
  features: int
  kernel_size: tuple[int, int]
  fast: bool = True

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (*self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    if self.fast:
      return conv2d_same_matmul(x, kernel) + bias
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias


class Conv3D(nn.Module):
  """Keras-style Conv3D (he_normal kernel, zero bias) on (N, H, W, B, C)."""
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] = (1, 1, 1)
  padding: str = "SAME"
  fast: bool = True

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", he_normal, (*self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    conv = conv3d_fast if self.fast else conv3d_plain
    return conv(x, kernel, tuple(self.strides), self.padding) + bias


class ParallelConvs(nn.Module):
  """Several 'SAME' convolutions of one input, outputs concatenated on channels (the multi-scale
  branches). Parameters `kernel_i` (k..., Cin, features), `bias_i` as separate Conv3D layers would
  hold them. Band kernels (1, 1, k) run fused: every kernel zero-padded to the largest k, one
  im2col matmul producing all branches at once (more multiply-adds, but one wide matmul instead of
  several narrow ones, which is faster on CPU)."""
  features: int
  kernel_sizes: Sequence[Sequence[int]]
  fast: bool = True

  @nn.compact
  def __call__(self, x):
    kernels = [self.param(f"kernel_{i}", he_normal, (*k, x.shape[-1], self.features))
               for i, k in enumerate(self.kernel_sizes)]
    biases = [self.param(f"bias_{i}", nn.initializers.zeros, (self.features,))
              for i in range(len(kernels))]
    bias = jnp.concatenate(biases)
    band_only = all(tuple(k[:2]) == (1, 1) and k[2] % 2 for k in self.kernel_sizes)
    if self.fast and band_only and len(kernels) > 1:
      widest = max(k[2] for k in self.kernel_sizes)
      padded = [jnp.pad(w, [(0, 0), (0, 0), ((widest - w.shape[2]) // 2,) * 2, (0, 0), (0, 0)])
                for w in kernels]
      return conv3d_fast(x, jnp.concatenate(padded, axis=-1), (1, 1, 1), "SAME") + bias
    conv = conv3d_fast if self.fast else conv3d_plain
    return jnp.concatenate([conv(x, w, (1, 1, 1), "SAME") for w in kernels], axis=-1) + bias


def band_batch_norm(train: bool, name=None):
  """Keras BatchNormalization(axis=3): statistics per BAND index (docs/decisions.md, "BatchNorm
  axis"), reduced over N, H, W, C."""
  return nn.BatchNorm(use_running_average=not train, axis=3, momentum=0.99, epsilon=1e-6, name=name)


def upsample(x, factor: int):
  """Nearest-neighbour upsampling of the two spatial axes of (N, H, W, B, C)."""
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)
