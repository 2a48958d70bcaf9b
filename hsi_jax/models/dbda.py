"""DBDA (Li et al., Remote Sens. 2020), as the official PyTorch code builds it (lironui/Double-
Branch-Dual-Attention-Mechanism-Network, `global_module/network.py`, `DBDA_network_MISH`;
docs/decisions.md, "DBDA").

Input: `patch` (N, S, S, B) -- every band of the S x S neighbourhood (9 x 9 x 200 on Indian Pines),
each band standardised; `spectrum` is not read. Output: logits (N, C). On (N, S, S, B, 1):
* spectral branch: Conv3D 24 (1,1,7) stride (1,1,2) valid -> B' bands; a dense block of three
  BN-Mish-Conv3D 12 (1,1,7) same, each on the concatenation of all before it (24 + 3 x 12 = 60);
  BN-Mish-Conv3D 60 (1,1,B') valid; channel attention (CAM) a, then a * x;
* spatial branch: Conv3D 24 (1,1,B) valid; a dense block of three BN-Mish-Conv3D 12 (3,3,1) same
  (60 channels, no BN-Mish after it); position attention (PAM) a, then a * x;
* each branch BN-Mish-dropout, averaged over positions; concatenated (120); Dense(C).
CAM (as DANet's): E = X X^T over the C channels' flattened positions, A = softmax(max_j E - E),
out = gamma * A X + X. PAM: q, k = 1x1 convolutions to C // 8 channels, v to C, A = softmax over
positions of q k^T, out = gamma * v A^T + X. Both gammas start at 0. The code's `conv25` is
declared but never called, so it is not here (docs/decisions.md). PyTorch's default
initialisation; BatchNorm over channels, momentum 0.1 (PyTorch's convention: Flax's 0.9), epsilon
1e-3.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from hsi_jax.models import layers


def mish(x):
  """x tanh(softplus(x))."""
  return x * jnp.tanh(jax.nn.softplus(x))


def channel_attention(x, gamma):
  """CAM of x (N, P, C) (P positions): gamma * softmax(max - X^T X) applied over channels + x."""
  energy = jnp.einsum("npc,npd->ncd", x, x)
  attention = jax.nn.softmax(jnp.max(energy, -1, keepdims=True) - energy, axis=-1)
  return gamma * jnp.einsum("ncd,npd->npc", attention, x) + x


class DBDA(nn.Module):
  """See the module docstring. __call__(spectrum (N, B), patch (N, S, S, B), train) -> (N, C)."""
  num_classes: int
  conv: Callable          # layers.ConvForms.conv3d
  first_features: int     # 24
  growth: int             # 12: each dense-block layer's output channels
  dense_layers: int       # 3
  spectral_kernel: int    # 7
  spectral_stride: int    # 2
  spatial_kernel: int     # 3
  dropout_rate: float     # 0.5
  bn_momentum: float      # Flax's convention (1 - PyTorch's)
  bn_epsilon: float

  def _conv(self, features, kernel, strides=(1, 1, 1), padding="SAME", name=None):
    return layers.Conv3D(features, kernel, self.conv, strides, padding, initializer="torch_default",
                         name=name)

  def _bn_mish(self, x, train: bool, name=None):
    return mish(nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                             epsilon=self.bn_epsilon, name=name)(x))

  def _dense_block(self, x, kernel, train: bool, prefix: str):
    features = [x]
    for i in range(self.dense_layers):
      y = self._bn_mish(jnp.concatenate(features, -1), train, name=f"{prefix}_bn{i + 1}")
      features.append(self._conv(self.growth, kernel, name=f"{prefix}_conv{i + 2}")(y))
    return jnp.concatenate(features, -1)

  def _head(self, x, train: bool, name: str):
    x = self._bn_mish(x, train, name=f"{name}_bn")
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return jnp.mean(x, axis=(1, 2, 3))

  @nn.compact
  def __call__(self, spectrum, patch, train: bool = False):
    del spectrum
    x = patch[..., None]
    n, s = x.shape[0], x.shape[1]
    # Spectral branch.
    a = self._conv(self.first_features, (1, 1, self.spectral_kernel), (1, 1, self.spectral_stride),
                   "VALID", name="spectral_conv1")(x)
    a = self._dense_block(a, (1, 1, self.spectral_kernel), train, "spectral")
    a = self._bn_mish(a, train, name="spectral_bn4")
    a = self._conv(a.shape[-1], (1, 1, a.shape[3]), padding="VALID", name="spectral_conv5")(a)
    gamma = self.param("spectral_gamma", nn.initializers.zeros, (1,))
    attended = channel_attention(a.reshape(n, -1, a.shape[-1]), gamma).reshape(a.shape)
    a = self._head(attended * a, train, "spectral")
    # Spatial branch.
    b = self._conv(self.first_features, (1, 1, x.shape[3]), padding="VALID",
                   name="spatial_conv1")(x)
    k = self.spatial_kernel
    b = self._dense_block(b, (k, k, 1), train, "spatial")[:, :, :, 0]        # (N, S, S, 60)
    channels = b.shape[-1]
    q, key = (layers.dense(b, channels // 8, "torch_default", name=name) for name in ("query",
                                                                                    "key"))
    v = layers.dense(b, channels, "torch_default", name="value")
    attention = jax.nn.softmax(jnp.einsum("npc,nqc->npq", q.reshape(n, s * s, -1),
                                          key.reshape(n, s * s, -1)), axis=-1)
    gamma = self.param("spatial_gamma", nn.initializers.zeros, (1,))
    out = gamma * jnp.einsum("nqc,npq->npc", v.reshape(n, s * s, -1), attention)
    attended = out.reshape(b.shape) + b
    c = self._head((attended * b)[:, :, :, None], train, "spatial")
    return layers.dense(jnp.concatenate([a, c], -1), self.num_classes, "torch_default",
                        name="classifier")
