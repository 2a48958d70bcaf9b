"""DA-IMRN: two interacting branches over six stages, one class distribution per patch pixel.

Input (N, p, p, B) raw cube patches; output logits (N, p, p, num_classes) (docs/decisions.md,
"DA-IMRN network").
Stage k: a_in = concat(a, SAM(b)), b_in = concat(b, SCAM(a)); a = MSpaRB_k(a_in), b = MSpeRB_k(b_in).
After stage 5 (3 bands left): concat, average over the 3 bands, 1x1x1 conv to the classes.
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from hsi_jax.models.attention import SAM, SCAM
from hsi_jax.models.blocks import MultiScaleResidualBlock
from hsi_jax.models.layers import PLAIN_FORMS, Conv3D, ConvForms

# The paper's multi-scale branches (the DAIMRN defaults; the configs set model.spatial_kernels and
# model.spectral_kernels per scene).
SPATIAL_KERNELS = ((3, 3, 1), (5, 5, 1), (7, 7, 1))
SPECTRAL_KERNELS = ((1, 1, 3), (1, 1, 5), (1, 1, 7))


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
  """stage_features[k] = (F2, F3); band_strides[k], valid_kernels[k] per stage; the branch kernels
  of the spatial and spectral blocks; BatchNorm momentum and epsilon (config.model sets every one:
  models.build_da_imrn). `forms`: the program's convolution functions (layers.conv_forms; the
  default, the plain ones, is the reference)."""
  num_classes: int
  stage_features: Sequence[Sequence[int]]
  band_strides: Optional[Sequence[int]]   # None (both): band_schedule(the input's band count)
  valid_kernels: Optional[Sequence[int]]
  spatial_kernels: Sequence[Sequence[int]] = SPATIAL_KERNELS
  spectral_kernels: Sequence[Sequence[int]] = SPECTRAL_KERNELS
  attention_hidden: int = 512
  use_scam: bool = True
  use_sam: bool = True
  interact: bool = True
  forms: ConvForms = PLAIN_FORMS
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-6
  initializer: str = "he_normal"  # every convolution's kernel (layers.initializers)

  @nn.compact
  def __call__(self, x, train: bool = False):
    strides, kernels = ((self.band_strides, self.valid_kernels) if self.band_strides is not None
                        else band_schedule(x.shape[-1]))
    x = x[..., None]  # (N, p, p, B, 1): Keras channels-last 3-D layout
    a = b = x
    for k, (f2, f3) in enumerate(self.stage_features):
      if self.interact:
        from_b = (SAM(self.forms.conv3d, self.initializer, name=f"sam_{k}")(b) if self.use_sam
                  else b)
        from_a = (SCAM(self.forms.conv3d, self.attention_hidden, self.initializer,
                       name=f"scam_{k}")(a) if self.use_scam else a)
        a, b = (a, from_b), (b, from_a)  # channel-concatenated by the blocks' entry convolutions
      block = lambda branch_kernels, name: MultiScaleResidualBlock(  # noqa: E731
          f2, f3, strides[k], kernels[k], branch_kernels, self.forms,
          self.bn_momentum, self.bn_epsilon, self.initializer, name=name)
      a = block(self.spatial_kernels, f"spatial_{k}")(a, train)
      b = block(self.spectral_kernels, f"spectral_{k}")(b, train)
    f = jnp.concatenate([a, b], axis=-1)  # (N, p, p, 3, 2 F3)
    f = jnp.mean(f, axis=3, keepdims=True)  # AvgPool3D((1, 1, 3)) over the 3 remaining bands
    logits = Conv3D(self.num_classes, (1, 1, 1), self.forms.conv3d,
                    initializer=self.initializer, name="classifier")(f)
    return logits[:, :, :, 0, :]
