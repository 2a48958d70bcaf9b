"""The (1, 1, k) band convolution of DA-IMRN as 1-D convolutions that stay fast on XLA's CPU
backend inside a training epoch's loop, with its own gradient.

`band_conv(x (R, B, Cin), kernel (k, Cin, Cout), padding (lo, hi))` -> (R, B + lo + hi - k + 1,
Cout), stride 1, R = pixels (the pixels are the convolution's batch). Equal to
`lax.conv_general_dilated` with ("NWC", "WIO", "NWC"); what differs is the program:
- The forward, input-gradient and kernel-gradient convolutions are each written in the canonical
  layout (batch, spatial, feature). XLA's own transpose of a convolution puts the kernel gradient
  in a layout that its CPU backend runs ~100x slower inside a `while` loop (jax-ml/jax#12868;
  measured here: 1.2 s against 14 ms for a stage-0 kernel gradient), which is why the epoch used
  im2col matmuls before.
- Under `vmap` (seeds trained together) each seed's convolution is its own convolution: JAX's
  batching rule turns per-seed kernels into a grouped convolution, which ran 1.3-1.8x slower on
  this CPU than the same convolutions one after another.
Only for B >= k: with a kernel longer than the bands XLA's CPU convolution takes a slow path
(layers.conv3d_fast uses the im2col matmul there).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

_NWC = ("NWC", "WIO", "NWC")


def _seedwise(conv):
  """conv(lhs, rhs) -> out, batched over seeds by unrolling: one convolution per seed."""
  batched = jax.custom_batching.custom_vmap(conv)

  @batched.def_vmap
  def _rule(axis_size, in_batched, lhs, rhs):
    pick = lambda a, is_batched, i: a[i] if is_batched else a  # noqa: E731
    outs = [conv(pick(lhs, in_batched[0], i), pick(rhs, in_batched[1], i))
            for i in range(axis_size)]
    return jnp.stack(outs), True

  return batched


def _correlate(padding):
  """lhs (N, L, I), rhs (K, I, O) -> (N, L + lo + hi - K + 1, O)."""
  return _seedwise(lambda lhs, rhs: jax.lax.conv_general_dilated(
      lhs, rhs, (1,), [padding], dimension_numbers=_NWC))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def band_conv(x, kernel, padding: tuple[int, int]):
  return _correlate(padding)(x, kernel)


def _forward(x, kernel, padding):
  return band_conv(x, kernel, padding), (x, kernel)


def _backward(padding, residuals, grad):
  x, kernel = residuals
  taps = kernel.shape[0]
  lo, hi = padding
  # dx[j] = sum_t grad[j + lo - t] @ kernel[t].T: a correlation with the reversed, transposed kernel.
  flipped = jnp.swapaxes(kernel[::-1], 1, 2)
  dx = _correlate((taps - 1 - lo, taps - 1 - hi))(grad, flipped)
  # dkernel[t] = sum_{r, b} x_padded[r, b + t].T @ grad[r, b]: a correlation whose batch is Cin,
  # spatial axis the bands and contracted feature the pixels.
  padded = jnp.pad(x, [(0, 0), (lo, hi), (0, 0)])
  dkernel = _correlate((0, 0))(jnp.transpose(padded, (2, 1, 0)), jnp.transpose(grad, (1, 0, 2)))
  return dx, jnp.transpose(dkernel, (1, 0, 2))


band_conv.defvjp(_forward, _backward)
