"""Multi-scale residual blocks (MSpaRB / MSpeRB; docs/decisions.md, "DA-IMRN network") on
(N, p, p, B, C)."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from hsi_jax.models.layers import Conv3D, ConvWeights, ParallelConvs, band_batch_norm


class MultiScaleResidualBlock(nn.Module):
  """x -> BN(1x1x1 conv, band stride) = s; y = concat(branch convs of s) -> 1x1x1 fuse -> BN
  (ParallelConvs computes the branches and the fuse together);
  y = ReLU(y + s); out = ReLU(BN(valid band conv (1, 1, k_valid) of y)).

  `branch_kernels`: (3,3,1), (5,5,1), (7,7,1) for the spatial block; (1,1,3), (1,1,5), (1,1,7) for
  the spectral one; ((1,1,1),) for the Indian Pines spatial block as the official code runs it.
  x (N, p, p, B, C) or a tuple of such arrays, the parts of a channel concatenation; output
  (N, p, p, B', features) with B' = ceil(B / band_stride) - k_valid + 1.
  """
  branch_features: int
  features: int
  band_stride: int
  k_valid: int
  branch_kernels: Sequence[Sequence[int]]
  fast: bool = True

  @nn.compact
  def __call__(self, x, train: bool):
    conv = lambda f, k, s=(1, 1, 1), pad="SAME", name=None: Conv3D(  # noqa: E731
        f, tuple(k), s, pad, fast=self.fast, name=name)
    shortcut = conv(self.features, (1, 1, 1), (1, 1, self.band_stride), "VALID", "entry")(x)
    shortcut = band_batch_norm(train, "entry_bn")(shortcut)
    fuse = ConvWeights(self.features, (1, 1, 1), name="fuse")(
        len(self.branch_kernels) * self.branch_features)
    y = ParallelConvs(self.branch_features, self.branch_kernels, self.fast, name="branches")(
        shortcut, fuse)
    y = band_batch_norm(train, "fuse_bn")(y)
    y = nn.relu(y + shortcut)
    y = conv(self.features, (1, 1, self.k_valid), pad="VALID", name="valid")(y)
    return nn.relu(band_batch_norm(train, "valid_bn")(y))
