"""SSRN (Zhong et al., IEEE TGRS 2018), as the official Keras code builds it (zilongzhong/SSRN,
`Utils/ssrn_SS_IN.py`, `build_resnet_8`; docs/decisions.md, "SSRN").

Input: `patch` (N, S, S, B) -- every band of the S x S neighbourhood (7 x 7 x 200 on Indian Pines),
each band standardised; `spectrum` is not read. Output: logits (N, C). On (N, S, S, B, 1):
* spectral: Conv3D 24 (1,1,7) stride (1,1,2) valid -> BN-ReLU; `spectral_blocks` residual blocks of
  two Conv3D 24 (1,1,7) same (the first block's first convolution without the BN-ReLU before it,
  as keras-resnet's first block) + identity; BN-ReLU twice; Conv3D 128 (1,1,B') valid over the
  remaining B' bands -> BN-ReLU;
* spatial: the 128 features become the band axis (N, S, S, 128, 1); Conv3D 24 (3,3,128) valid ->
  BN-ReLU; `spatial_blocks` residual blocks of two Conv3D 24 (3,3,1) same + a (1,1,1) projection of
  the block's input (the code always projects); BN-ReLU twice;
* average over the (S-2) x (S-2) positions, dropout, Dense(C).
The code has one block per part (`build_resnet_8`); the paper's figure draws two
(model.spectral_blocks / spatial_blocks). Every convolution and the Dense: Keras he_normal, zero
bias; convolution kernels carry the code's L2 1e-4 (train.kernel_l2, in the loss). BatchNorm over
channels, Keras' momentum 0.99 and epsilon 1e-3.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from hsi_jax.models import layers


class SSRN(nn.Module):
  """See the module docstring. __call__(spectrum (N, B), patch (N, S, S, B), train) -> (N, C)."""
  num_classes: int
  conv: Callable                # layers.ConvForms.conv3d
  filters: int                  # 24: every residual block's width
  band_features: int            # 128: the spectral part's last convolution
  spectral_kernel: int          # 7
  spectral_stride: int          # 2: the first convolution's band stride
  spatial_kernel: int           # 3
  spectral_blocks: int          # 1 in the code
  spatial_blocks: int           # 1 in the code
  dropout_rate: float           # 0.5
  bn_momentum: float
  bn_epsilon: float

  def _conv(self, features, kernel, strides=(1, 1, 1), padding="SAME", name=None):
    return layers.Conv3D(features, kernel, self.conv, strides, padding, initializer="he_normal",
                         name=name)

  def _bn_relu(self, x, train: bool):
    return nn.relu(nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                                epsilon=self.bn_epsilon)(x))

  def _residual_blocks(self, x, count: int, kernel, train: bool, project: bool):
    for block in range(count):
      y = x if block == 0 else self._bn_relu(x, train)
      y = self._conv(self.filters, kernel)(y)
      y = self._conv(self.filters, kernel)(self._bn_relu(y, train))
      shortcut = self._conv(self.filters, (1, 1, 1), padding="VALID")(x) if project else x
      x = shortcut + y
    return self._bn_relu(self._bn_relu(x, train), train)

  @nn.compact
  def __call__(self, spectrum, patch, train: bool = False):
    del spectrum
    x = patch[..., None]
    x = self._conv(self.filters, (1, 1, self.spectral_kernel), (1, 1, self.spectral_stride),
                   "VALID")(x)
    x = self._bn_relu(x, train)
    x = self._residual_blocks(x, self.spectral_blocks, (1, 1, self.spectral_kernel), train,
                              project=False)
    x = self._conv(self.band_features, (1, 1, x.shape[3]), padding="VALID")(x)
    x = self._bn_relu(x, train)                                  # (N, S, S, 1, 128)
    x = jnp.swapaxes(x, 3, 4)                                    # (N, S, S, 128, 1)
    k = self.spatial_kernel
    x = self._conv(self.filters, (k, k, x.shape[3]), padding="VALID")(x)
    x = self._bn_relu(x, train)                                  # (N, S-2, S-2, 1, 24)
    x = self._residual_blocks(x, self.spatial_blocks, (k, k, 1), train, project=True)
    x = jnp.mean(x, axis=(1, 2, 3))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return layers.dense(x, self.num_classes, "he_normal", name="classifier")
