"""DA-IMRN: two interacting branches over six stages, one class distribution per patch pixel.

Input (N, p, p, B) raw cube patches; output logits (N, p, p, num_classes) (docs/decisions.md,
"DA-IMRN network").
Stage k: a_in = concat(a, SAM(b)), b_in = concat(b, SCAM(a)); a = MSpaRB_k(a_in), b = MSpeRB_k(b_in).
After stage 5 (3 bands left): concat, average over the 3 bands, 1x1x1 conv to the classes.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from hsi_jax.models.attention import SAM, SCAM
from hsi_jax.models.blocks import MultiScaleResidualBlock
from hsi_jax.models.layers import Conv3D

SPATIAL_KERNELS = ((3, 3, 1), (5, 5, 1), (7, 7, 1))
SPECTRAL_KERNELS = ((1, 1, 3), (1, 1, 5), (1, 1, 7))
# The IP spatial block as the official code runs it: the 3x3 branch is dead, one 1x1x1 remains.
IP_CODE_SPATIAL_KERNELS = ((1, 1, 1),)
IP_MULTISCALE_SPATIAL_KERNELS = ((1, 1, 1), (3, 3, 1))


# Bands after each of the six stages in the paper's schedules (IP 200, PU 103, SV 204 bands).
PAPER_STAGE_BANDS = (100, 50, 24, 12, 6, 3)


def stage_bands(num_bands: int, band_strides, valid_kernels) -> list[int]:
  """Bands after each stage: B' = ceil(B / stride) - valid kernel + 1."""
  bands = []
  for stride, kernel in zip(band_strides, valid_kernels):
    num_bands = -(-num_bands // stride) - kernel + 1
    bands.append(num_bands)
  return bands


def band_schedule(num_bands: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """(band_strides, valid_kernels) of the six stages for a cube of `num_bands` bands, ending
  with the paper's 3 bands after stage 5. Stage 0 brings the bands to the largest value of the
  paper's sequence (100, 50, 24, 12, 6, 3) they reach, with the largest stride that keeps them
  there; stages that the paper's sequence does not need keep the bands (stride 1, kernel 1);
  the rest follow the paper (stride 2; kernel 2 from 50 to 24). For 103, 200 and 204 bands this
  is the paper's schedule."""
  if num_bands < 3:
    raise ValueError(f"DA-IMRN needs at least 3 bands, the cube has {num_bands}.")
  start = next(k for k, bands in enumerate(PAPER_STAGE_BANDS) if bands <= num_bands)
  target = PAPER_STAGE_BANDS[start]
  stride = max(s for s in range(1, num_bands + 1) if -(-num_bands // s) >= target)
  strides, kernels = [stride], [-(-num_bands // stride) - target + 1]
  strides += [1] * start
  kernels += [1] * start
  for before, after in zip(PAPER_STAGE_BANDS[start:], PAPER_STAGE_BANDS[start + 1:]):
    strides.append(2)
    kernels.append(-(-before // 2) - after + 1)
  return tuple(strides), tuple(kernels)


class DAIMRN(nn.Module):
  """stage_features[k] = (F2, F3); band_strides[k], valid_kernels[k] per stage (config.model)."""
  num_classes: int
  stage_features: Sequence[Sequence[int]]
  band_strides: Sequence[int]
  valid_kernels: Sequence[int]
  spatial_kernels: Sequence[Sequence[int]] = SPATIAL_KERNELS
  spectral_kernels: Sequence[Sequence[int]] = SPECTRAL_KERNELS
  attention_hidden: int = 512
  use_scam: bool = True
  use_sam: bool = True
  interact: bool = True
  fast: bool = True

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x[..., None]  # (N, p, p, B, 1): Keras channels-last 3-D layout
    a = b = x
    for k, (f2, f3) in enumerate(self.stage_features):
      if self.interact:
        from_b = SAM(fast=self.fast, name=f"sam_{k}")(b) if self.use_sam else b
        from_a = SCAM(self.attention_hidden, fast=self.fast, name=f"scam_{k}")(a) \
            if self.use_scam else a
        a, b = (a, from_b), (b, from_a)  # channel-concatenated by the blocks' entry convolutions
      block = lambda kernels, name: MultiScaleResidualBlock(  # noqa: E731
          f2, f3, self.band_strides[k], self.valid_kernels[k], kernels, self.fast, name=name)
      a = block(self.spatial_kernels, f"spatial_{k}")(a, train)
      b = block(self.spectral_kernels, f"spectral_{k}")(b, train)
    f = jnp.concatenate([a, b], axis=-1)  # (N, p, p, 3, 2 F3)
    f = jnp.mean(f, axis=3, keepdims=True)  # AvgPool3D((1, 1, 3)) over the 3 remaining bands
    logits = Conv3D(self.num_classes, (1, 1, 1), fast=self.fast, name="classifier")(f)
    return logits[:, :, :, 0, :]
