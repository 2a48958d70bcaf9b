"""Stride-1 convolutions that stay fast on XLA's CPU backend inside a training epoch's loop, with
their own gradient: DA-IMRN's (1, 1, k) band and (k, k, 1) spatial convolutions.

`conv(x (N, *S, Cin), kernel (*K, Cin, Cout), padding ((lo, hi) per spatial axis))` ->
(N, *(S + lo + hi - K + 1), Cout), one or two spatial axes (N = pixels for band convolutions,
patches x bands for spatial ones). Equal to `lax.conv_general_dilated` in the NWC / NHWC layout;
what differs is the program:
- The forward and input-gradient convolutions are written in the canonical layout (batch,
  spatial..., feature), and so is the kernel gradient of a 1-D one; a 2-D kernel gradient is one
  matmul per tap. XLA's own transpose of a convolution leaves the kernel gradient in a form that
  its CPU backend runs ~100x slower inside a `while` loop (jax-ml/jax#12868; measured here: 1.2 s
  against 14 ms for DA-IMRN's stage-0 band kernel gradient, 43 s against 0.75 s for PU's stage-0
  7 x 7 one), which is why the epoch ran im2col matmuls before.
- Under `vmap` (seeds trained together) on the CPU each seed's convolution is its own
  convolution: JAX's batching rule turns per-seed kernels into a grouped convolution, which ran
  1.3-1.8x slower on this CPU than the same convolutions one after another.
What depends on the platform is the `LoopForm` argument, chosen once for the devices of a program
(layers.conv_forms), never read from the default backend while tracing.
Only for kernels no longer than the input on every axis: past that XLA's CPU convolution takes a
slow path (layers.conv3d_fast then runs band kernels as im2col matmuls, spatial ones through lax).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

_LAYOUT = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}

# XLA's CPU options for programs built on 2-D convolutions of this module: XNNPACK (YNNPACK) keeps
# the matmuls and Eigen takes the convolutions (XLA's default hands both to YNNPACK). In a
# training loop, Eigen ran PU's 7 x 7 spatial convolution (1,648 8 x 8 images, 64 -> 32 channels)
# in 130 ms against 280 ms; handing the matmuls to Eigen too made IP's step 20 % slower, and so
# did Eigen's 1-D band convolutions (models.compiler_options picks the networks). The kernel
# gradients that make Eigen slow inside loops (jax-ml/jax#12868) are never emitted: this module
# writes its own. layers.conv_forms gives them to CPU programs.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}

# Bytes of x per chunk of the 2-D kernel gradient on the CPU (a chunk's taps stay in cache).
KERNEL_GRAD_CHUNK_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class LoopForm:
  """How `conv` runs on one platform (layers.conv_forms chooses it from the mesh's devices).

  unroll_seeds: under vmap, one convolution per seed (the CPU); False keeps JAX's batching rule,
    a grouped convolution (grouped convolutions are what accelerator libraries are built for, and
    an unrolled seeds axis sharded over devices would move data between them).
  grad_chunk_bytes: a 2-D kernel gradient is summed under lax.scan over chunks of the batch of
    about this many bytes of x (the CPU: a chunk's window copies stay in cache); 0 takes the whole
    batch at once.
  """
  unroll_seeds: bool
  grad_chunk_bytes: int


def _seedwise(correlate, unroll_seeds: bool):
  """correlate(lhs, rhs) -> out, batched over seeds by unrolling (one convolution per seed) when
  `unroll_seeds`, else by JAX's batching rule."""
  batched = jax.custom_batching.custom_vmap(correlate)

  @batched.def_vmap
  def _rule(axis_size, in_batched, lhs, rhs):
    if not unroll_seeds:
      axes = tuple(0 if is_batched else None for is_batched in in_batched)
      return jax.vmap(correlate, in_axes=axes)(lhs, rhs), True
    pick = lambda a, is_batched, i: a[i] if is_batched else a  # noqa: E731
    outs = [correlate(pick(lhs, in_batched[0], i), pick(rhs, in_batched[1], i))
            for i in range(axis_size)]
    return jnp.stack(outs), True

  return batched


def _correlate(padding, unroll_seeds: bool):
  """lhs (N, *L, I), rhs (*K, I, O) -> (N, *(L + lo + hi - K + 1), O)."""
  return _seedwise(lambda lhs, rhs: jax.lax.conv_general_dilated(
      lhs, rhs, (1,) * len(padding), list(padding), dimension_numbers=_LAYOUT[len(padding)]),
      unroll_seeds)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv(x, kernel, padding: tuple[tuple[int, int], ...], form: LoopForm):
  return _correlate(padding, form.unroll_seeds)(x, kernel)


def _forward(x, kernel, padding, form):
  return conv(x, kernel, padding, form), (x, kernel)


def _backward(padding, form, residuals, grad):
  x, kernel = residuals
  axes = len(padding)
  spatial = tuple(range(axes))
  # dx = grad correlated with the kernel reversed in space, its in / out features swapped.
  flipped = jnp.swapaxes(jnp.flip(kernel, spatial), -1, -2)
  dx = _correlate(tuple((k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(kernel.shape, padding)),
                  form.unroll_seeds)(grad, flipped)
  if axes == 1:  # dkernel: a correlation whose batch is Cin, spatial axis the bands, feature N
    padded = jnp.pad(x, [(0, 0), *padding, (0, 0)])
    dkernel = _correlate(((0, 0),), form.unroll_seeds)(jnp.transpose(padded, (2, 1, 0)),
                                                       jnp.transpose(grad, (1, 0, 2)))
    return dx, jnp.transpose(dkernel, (1, 0, 2))
  return dx, _kernel_grad_2d(x, grad, kernel.shape, padding, form.grad_chunk_bytes)


def _kernel_grad_2d(x, grad, kernel_shape, padding, chunk_bytes: int):
  """dkernel (kh, kw, Cin, Cout) of the 2-D correlation of x (N, H, W, Cin) giving grad's
  (N, Ho, Wo, Cout) positions: dkernel[t] = sum over N and input positions p of x[p].T @
  grad[p + lo - t], one matmul per tap t with grad's window read from a zero-padded copy (grad
  has the fewer channels in DA-IMRN's spatial branches, Cin -> Cin / 2).

  XLA's CPU backend copies each window before its matmul, and those copies ran at 0.7-4 GB/s over
  PU's 27 MB stage-0 activations (more time than all the convolutions), so on the CPU the batch is
  cut into chunks of about `chunk_bytes` of x (LoopForm.grad_chunk_bytes; 0: one chunk), summed
  under lax.scan, and a chunk's windows are copied in cache. (XLA's own convolution for this
  contraction ran at ~6 GFLOP/s here, its own transpose ~50x slower still inside a loop.)"""
  kh, kw, cin, cout = kernel_shape
  n, h, w = x.shape[:3]
  pads = [(0, 0, 0), *[(k - 1 - lo, k - 1 - hi, 0) for k, (lo, hi) in
                       zip((kh, kw), padding)], (0, 0, 0)]

  def taps(x, grad):
    padded = jax.lax.pad(grad, jnp.zeros((), grad.dtype), pads)
    rows = x.reshape(-1, cin).T
    return jnp.stack([rows @ padded[:, kh - 1 - i:kh - 1 - i + h, kw - 1 - j:kw - 1 - j + w]
                      .reshape(-1, cout) for i, j in np.ndindex(kh, kw)])

  per_chunk = n
  if chunk_bytes:  # the smallest divisor of N whose chunk reaches the bytes
    item_bytes = h * w * cin * x.dtype.itemsize
    target = min(chunk_bytes, n * item_bytes)
    per_chunk = next(d for d in range(1, n + 1) if n % d == 0 and d * item_bytes >= target)
  if per_chunk == n:
    return taps(x, grad).reshape(kernel_shape)
  chunks = (x.reshape(-1, per_chunk, *x.shape[1:]), grad.reshape(-1, per_chunk, *grad.shape[1:]))
  total = jax.lax.scan(lambda total, chunk: (total + taps(*chunk), None),
                       jnp.zeros((kh * kw, cin, cout), grad.dtype), chunks)[0]
  return total.reshape(kernel_shape)


conv.defvjp(_forward, _backward)
