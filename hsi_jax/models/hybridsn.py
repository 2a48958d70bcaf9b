"""HybridSN (Roy et al., IEEE GRSL 2020), as the official Keras notebook builds it
(gokriznastic/HybridSN, `Hybrid-Spectral-Net.ipynb`; docs/decisions.md, "HybridSN").

Input: `patch` (N, S, S, K) -- the S x S neighbourhood of K whitened principal components (25 x 25 x
30 on Indian Pines); `spectrum` is not read. Output: logits (N, C). On (N, S, S, K, 1): Conv3D 8
(3,3,7), 16 (3,3,5), 32 (3,3,3), each valid + ReLU -> (N, S-6, S-6, K-12, 32), reshaped to
(N, S-6, S-6, (K-12) * 32) (band-major, channel-fastest, as Keras' Reshape); Conv2D 64 (3,3) valid
+ ReLU; flatten; Dense 256 + ReLU, dropout; Dense 128 + ReLU, dropout; Dense(C). Keras' default
initialisation (glorot-uniform kernels, zero biases).
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn

from hsi_jax.models import layers


class HybridSN(nn.Module):
  """See the module docstring. __call__(spectrum (N, B), patch (N, S, S, K), train) -> (N, C)."""
  num_classes: int
  conv: Callable                       # layers.ConvForms.conv3d
  conv3d_features: Sequence[int]       # (8, 16, 32)
  conv3d_kernels: Sequence[Sequence[int]]  # ((3, 3, 7), (3, 3, 5), (3, 3, 3))
  conv2d_features: int                 # 64
  conv2d_kernel: int                   # 3
  dense_units: Sequence[int]           # (256, 128)
  dropout_rate: float                  # 0.4

  @nn.compact
  def __call__(self, spectrum, patch, train: bool = False):
    del spectrum
    x = patch[..., None]
    for i, (features, kernel) in enumerate(zip(self.conv3d_features, self.conv3d_kernels)):
      x = nn.relu(layers.Conv3D(features, tuple(kernel), self.conv, padding="VALID",
                                initializer="glorot_uniform", name=f"conv3d_{i + 1}")(x))
    n, h, w, b, c = x.shape
    x = x.reshape(n, h, w, b * c)
    k = self.conv2d_kernel
    kernel_init, bias_init = layers.initializers("glorot_uniform", k * k * b * c)
    x = nn.relu(nn.Conv(self.conv2d_features, (k, k), padding="VALID", kernel_init=kernel_init,
                        bias_init=bias_init, name="conv2d")(x))
    x = x.reshape(n, -1)
    for i, units in enumerate(self.dense_units):
      x = nn.relu(layers.dense(x, units, "glorot_uniform", name=f"dense_{i + 1}"))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return layers.dense(x, self.num_classes, "glorot_uniform", name="classifier")
