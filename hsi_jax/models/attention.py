"""The two attention modules through which DA-IMRN's branches guide each other (docs/decisions.md,
"DA-IMRN network")."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from hsi_jax.models.layers import Conv3D, upsample


class SCAM(nn.Module):
  """Spatial- and channel-wise attention: x (N, p, p, B, C) -> (1 + A) * x, A (N, p, p, B, C).

  A = (channel weight g + fine spatial map s1 + coarse spatial map s2) / 3, with
  g = sigmoid(MLP_{C->hidden->C}(mean over p, p, B)), s1 = sigmoid(1x1x1 conv -> 1),
  s2 = sigmoid((p/2, p/2, 1) conv, stride p/2 -> 2 x 2) upsampled to p x p.
  `conv`: the convolutions' function (layers.ConvForms.conv3d); `initializer`: the
  convolutions' kernels' (layers.initializers; the MLP keeps Flax's Dense default).
  """
  conv: Callable
  hidden: int = 512
  initializer: str = "he_normal"

  @nn.compact
  def __call__(self, x):
    channels, patch = x.shape[-1], x.shape[1]
    g = jnp.mean(x, axis=(1, 2, 3))
    g = nn.relu(nn.Dense(self.hidden, name="mlp_hidden")(g))
    g = nn.sigmoid(nn.Dense(channels, name="mlp_out")(g))[:, None, None, None, :]
    s1 = nn.sigmoid(Conv3D(1, (1, 1, 1), self.conv, initializer=self.initializer,
                           name="fine")(x))
    half = patch // 2
    s2 = Conv3D(1, (half, half, 1), self.conv, (half, half, 1), "VALID", self.initializer,
                name="coarse")(x)
    s2 = upsample(nn.sigmoid(s2), half)
    attention = (g + s1 + s2) / 3.0
    return x + attention * x


class SAM(nn.Module):
  """Spectral-wise attention: one weight per band from the whole patch, x + a * x.

  a = sigmoid((p, p, 1) conv with stride p -> (N, 1, 1, B, 1)), broadcast over the patch.
  `conv`: the convolution's function (layers.ConvForms.conv3d); `initializer`: its kernel's.
  """
  conv: Callable
  initializer: str = "he_normal"

  @nn.compact
  def __call__(self, x):
    patch = x.shape[1]
    a = Conv3D(1, (patch, patch, 1), self.conv, (patch, patch, 1), "VALID", self.initializer,
               name="band")(x)
    return x + nn.sigmoid(a) * x
