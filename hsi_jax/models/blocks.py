"""Multi-scale residual blocks (MSpaRB / MSpeRB; docs/decisions.md, "DA-IMRN network") on
(N, p, p, B, C)."""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn

from hsi_jax.models.layers import (Conv3D, ConvForms, ConvWeights, FusedBranches, ParallelConvs,
                                   band_batch_norm)


class MultiScaleResidualBlock(nn.Module):
  """x -> BN(1x1x1 conv, band stride) = s; y = concat(branch convs of s) -> 1x1x1 fuse -> BN
  (ParallelConvs computes the branches and the fuse, or FusedBranches in the fast forms);
  y = ReLU(y + s); out = ReLU(BN(valid band conv (1, 1, k_valid) of y)).

  `branch_kernels`: (3,3,1), (5,5,1), (7,7,1) for the spatial block; (1,1,3), (1,1,5), (1,1,7) for
  the spectral one; ((1,1,1),) for the Indian Pines spatial block as the official code runs it.
  x (N, p, p, B, C) or a tuple of such arrays, the parts of a channel concatenation; output
  (N, p, p, B', features) with B' = ceil(B / band_stride) - k_valid + 1. `forms`: the program's
  convolution functions (layers.conv_forms); bn_momentum, bn_epsilon: the BatchNorms';
  initializer: every kernel's (layers.initializers).
  """
  branch_features: int
  features: int
  band_stride: int
  k_valid: int
  branch_kernels: Sequence[Sequence[int]]
  forms: ConvForms
  bn_momentum: float
  bn_epsilon: float
  initializer: str = "he_normal"

  @nn.compact
  def __call__(self, x, train: bool):
    conv = functools.partial(Conv3D, conv=self.forms.conv3d, padding="VALID",
                             initializer=self.initializer)
    norm = functools.partial(band_batch_norm, train, self.bn_momentum, self.bn_epsilon)
    shortcut = conv(self.features, (1, 1, 1), strides=(1, 1, self.band_stride), name="entry")(x)
    shortcut = norm("entry_bn")(shortcut)
    fuse = ConvWeights(self.features, (1, 1, 1), self.initializer, name="fuse")(
        len(self.branch_kernels) * self.branch_features)
    if self.forms.fuse_branches:
      branches = FusedBranches(self.branch_features, self.branch_kernels, self.forms.loop_form,
                               self.initializer, name="branches")
    else:
      branches = ParallelConvs(self.branch_features, self.branch_kernels, self.forms.conv3d,
                               self.initializer, name="branches")
    y = norm("fuse_bn")(branches(shortcut, fuse))
    y = nn.relu(y + shortcut)
    y = conv(self.features, (1, 1, self.k_valid), name="valid")(y)
    return nn.relu(norm("valid_bn")(y))
