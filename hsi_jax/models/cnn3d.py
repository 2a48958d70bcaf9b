"""The 3-D CNN of Hamida et al. (IEEE TGRS 2018), as DeepHyperX implements it (nshaud/DeepHyperX,
`models.py`, `HamidaEtAl`; docs/decisions.md, "3-D CNN").

Input: `patch` (N, S, S, B) -- every band of the S x S neighbourhood (5 x 5 x 200 on Indian Pines),
the cube min-max scaled as one (not per band); `spectrum` is not read. Output: logits (N, C).
On (N, S, S, B, 1), kernels (h, w, bands):
  conv1  20 (3,3,3), no padding (1 when S = 3), ReLU;
  pool1  20 (1,1,3) stride (1,1,2), band padding 1 (a strided convolution, no activation);
  conv2  35 (3,3,3), band padding 1, ReLU;
  pool2  35 (1,1,3) stride (1,1,2), band padding 1;
  conv3  35 (1,1,3), band padding 1, ReLU;
  conv4  35 (1,1,2) stride (1,1,2), band padding 1, ReLU;
  flatten, Dense(C). No dropout (commented out in DeepHyperX). Every layer: kaiming-normal kernel
(untruncated, fan-in), zero bias (DeepHyperX's weight_init).
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from hsi_jax.models import layers

# (name, features, kernel, band stride, ReLU after it)
LAYERS = (("conv1", 20, (3, 3, 3), 1, True), ("pool1", 20, (1, 1, 3), 2, False),
          ("conv2", 35, (3, 3, 3), 1, True), ("pool2", 35, (1, 1, 3), 2, False),
          ("conv3", 35, (1, 1, 3), 1, True), ("conv4", 35, (1, 1, 2), 2, True))


class CNN3D(nn.Module):
  """See the module docstring. __call__(spectrum (N, B), patch (N, S, S, B), train) -> (N, C)."""
  num_classes: int
  conv: Callable   # layers.ConvForms.conv3d

  @nn.compact
  def __call__(self, spectrum, patch, train: bool = False):
    del spectrum, train
    x = patch[..., None]
    for name, features, kernel, stride, relu in LAYERS:
      # DeepHyperX pads conv1 by 1 on every axis only for 3 x 3 patches; the others by 1 band.
      pad = (1, 1, 1) if name == "conv1" and x.shape[1] == 3 else (0, 0, 0 if name == "conv1" else 1)
      x = jnp.pad(x, [(0, 0)] + [(p, p) for p in pad] + [(0, 0)])
      x = layers.Conv3D(features, kernel, self.conv, (1, 1, stride), "VALID",
                        initializer="kaiming_normal", name=name)(x)
      x = nn.relu(x) if relu else x
    x = x.reshape(x.shape[0], -1)
    return layers.dense(x, self.num_classes, "kaiming_normal", name="classifier")
