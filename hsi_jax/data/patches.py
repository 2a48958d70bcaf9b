"""Windows of the scene gathered on the device: origins in, (N, p, p, B) patches out (jittable)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def pad_scene(array: np.ndarray, patch: int) -> np.ndarray:
  """Zero-pads the two spatial axes by `patch` (origins are then shifted by `patch`)."""
  pad = [(patch, patch), (patch, patch)] + [(0, 0)] * (array.ndim - 2)
  return np.pad(array, pad)


def gather(padded: jax.Array, origins: jax.Array, patch: int) -> jax.Array:
  """padded (H+2p, W+2p, ...) and origins (N, 2) in unpadded coordinates -> (N, p, p, ...)."""
  def one(origin):
    start = (origin[0] + patch, origin[1] + patch) + (0,) * (padded.ndim - 2)
    return jax.lax.dynamic_slice(padded, start, (patch, patch) + padded.shape[2:])
  return jax.vmap(one)(origins)


def flip(patches: jax.Array, axis_code: jax.Array) -> jax.Array:
  """Per-example flip: code 0 = up-down, 1 = left-right, anything else = none. (N, p, p, ...)."""
  code = axis_code.reshape((-1,) + (1,) * (patches.ndim - 1))
  return jnp.where(code == 0, jnp.flip(patches, 1),
                   jnp.where(code == 1, jnp.flip(patches, 2), patches))
