"""Network builders: `build_model(model_config, num_classes, forms)` -> a Flax Linen module.

`BUILDERS` maps each network's name to its builder; which family trains it (and the classical
KNN / SVM, which are not networks) is hsi_jax/families' registry. `forms` (conv_forms) holds the
convolution functions for the platform of the program's devices: the families choose them once
from their mesh, and the program's XLA options with them (compiler_options).
"""

from __future__ import annotations

import jax

import dataclasses

from hsi_jax.models import cnn3d, da_imrn, dbda, hybridsn, ssan, ssrn
from hsi_jax.models.layers import ConvForms, conv_forms

# The networks HSI papers compare against (docs/models.md), pixel classifiers of the patch around
# a pixel: model name -> module. Their config.model holds one leaf per module field besides
# num_classes and conv (configs/common.py, zoo_sections).
ZOO = {"ssrn": ssrn.SSRN, "hybridsn": hybridsn.HybridSN, "dbda": dbda.DBDA, "cnn3d": cnn3d.CNN3D}


def _branch_kernels(model_config) -> tuple[tuple, tuple]:
  """(spatial, spectral) branch kernels of the multi-scale blocks: the config's, or with
  model.multiscale=False (ablation) the first (smallest) of each."""
  branches = None if model_config.multiscale else 1
  return (tuple(tuple(k) for k in model_config.spatial_kernels)[:branches],
          tuple(tuple(k) for k in model_config.spectral_kernels)[:branches])


def _tuple_or_none(values):
  return None if values is None else tuple(values)


def build_da_imrn(model_config, num_classes: int, forms: ConvForms) -> da_imrn.DAIMRN:
  width = model_config.width
  features = [tuple(max(1, round(f * width)) for f in pair) for pair in model_config.stage_features]
  spatial, spectral = _branch_kernels(model_config)
  return da_imrn.DAIMRN(
      num_classes=num_classes, stage_features=features,
      band_strides=_tuple_or_none(model_config.band_strides),  # None: from the input's bands
      valid_kernels=_tuple_or_none(model_config.valid_kernels),
      spatial_kernels=spatial, spectral_kernels=spectral,
      attention_hidden=max(1, round(model_config.attention_hidden * width)),
      use_scam=model_config.use_scam, use_sam=model_config.use_sam,
      interact=model_config.interact, forms=forms, bn_momentum=model_config.bn_momentum,
      bn_epsilon=model_config.bn_epsilon, initializer=model_config.initializer)


def build_ssan(model_config, num_classes: int, forms: ConvForms) -> ssan.SSAN:
  """SSAN or one of its comparison rows (model_config.name in ssan.VARIANTS)."""
  spectral, spatial, attention = ssan.VARIANTS[model_config.name]
  return ssan.SSAN(
      num_classes=num_classes, spectral=spectral, spatial=spatial, attention=attention,
      gru_units=model_config.gru_units, attention_size=model_config.attention_size,
      conv_features=tuple(model_config.conv_features), conv_kernel=model_config.conv_kernel,
      pool_window=model_config.pool_window, fc_units=model_config.fc_units,
      fusion_units=tuple(model_config.fusion_units), dropout_rate=model_config.dropout_rate,
      gru_gate_bias_init=model_config.gru_gate_bias_init,
      context_init_std=model_config.context_init_std, mask_init_std=model_config.mask_init_std,
      conv=forms.conv2d_same)


def _hashable(value):
  return tuple(_hashable(v) for v in value) if isinstance(value, (list, tuple)) else value


def build_zoo(model_config, num_classes: int, forms: ConvForms):
  """A network of ZOO, its fields from the model config's leaves of the same names."""
  module = ZOO[model_config.name]
  fields = [f.name for f in dataclasses.fields(module)
            if f.init and f.name not in ("num_classes", "conv", "parent", "name")]
  return module(num_classes=num_classes, conv=forms.conv3d,
                **{name: _hashable(model_config[name]) for name in fields})


BUILDERS = {"da_imrn": build_da_imrn, **{name: build_ssan for name in ssan.VARIANTS},
            **{name: build_zoo for name in ZOO}}


def compiler_options(model_config, forms: ConvForms) -> dict | None:
  """XLA options for the programs that run the config's network with `forms` (jax.jit's
  compiler_options): the forms' options (loop_conv's on the CPU) for a DA-IMRN with 2-D spatial
  convolutions (PU, SV, IP's multi-scale option); None otherwise. IP's code network has band
  convolutions only, which YNNPACK runs faster: with the options its step took 20 % longer (41
  against 52 patches/s)."""
  if model_config.name != "da_imrn" or forms.compiler_options is None:
    return None
  spatial, _ = _branch_kernels(model_config)
  return dict(forms.compiler_options) if any(k[:2] != (1, 1) for k in spatial) else None


def build_model(model_config, num_classes: int, forms: ConvForms | None = None):
  """The config's network computed with `forms`; None: the forms for the platform of the first
  device (for callers without a mesh: parameter counts, tests). A family passes its mesh's."""
  if model_config.name not in BUILDERS:
    raise ValueError(f"Unknown network {model_config.name!r}; available: {', '.join(BUILDERS)}.")
  if forms is None:
    forms = conv_forms(jax.devices()[0].platform, model_config.fast_conv)
  return BUILDERS[model_config.name](model_config, num_classes, forms)
