"""Network builders: `build_model(model_config, num_classes)` -> a Flax Linen module.

`BUILDERS` maps each network's name to its builder; which family trains it (and the classical
KNN / SVM, which are not networks) is hsi_jax/families' registry.
"""

from __future__ import annotations

from hsi_jax.models import da_imrn, loop_conv, ssan

IP_SPATIAL = {"code": da_imrn.IP_CODE_SPATIAL_KERNELS,
              "multiscale": da_imrn.IP_MULTISCALE_SPATIAL_KERNELS}


def build_da_imrn(model_config, num_classes: int) -> da_imrn.DAIMRN:
  width = model_config.width
  features = [tuple(max(1, round(f * width)) for f in pair) for pair in model_config.stage_features]
  ip_spatial = model_config.get("ip_spatial")
  if ip_spatial is not None and ip_spatial not in IP_SPATIAL:
    raise ValueError(f"model.ip_spatial must be one of {list(IP_SPATIAL)}, got {ip_spatial!r}.")
  spatial = IP_SPATIAL[ip_spatial] if ip_spatial else da_imrn.SPATIAL_KERNELS
  branches = None if model_config.multiscale else 1  # ablation: the first (smallest) kernel only
  return da_imrn.DAIMRN(
      num_classes=num_classes, stage_features=features,
      band_strides=tuple(model_config.band_strides),
      valid_kernels=tuple(model_config.valid_kernels),
      spatial_kernels=spatial[:branches], spectral_kernels=da_imrn.SPECTRAL_KERNELS[:branches],
      attention_hidden=max(1, round(model_config.attention_hidden * width)),
      use_scam=model_config.use_scam, use_sam=model_config.use_sam,
      interact=model_config.interact, fast=model_config.fast_conv)


def build_ssan(model_config, num_classes: int) -> ssan.SSAN:
  """SSAN or one of its comparison rows (model_config.name in ssan.VARIANTS)."""
  spectral, spatial, attention = ssan.VARIANTS[model_config.name]
  return ssan.SSAN(
      num_classes=num_classes, spectral=spectral, spatial=spatial, attention=attention,
      gru_units=model_config.gru_units, attention_size=model_config.attention_size,
      conv_features=tuple(model_config.conv_features), fc_units=model_config.fc_units,
      fusion_units=tuple(model_config.fusion_units), dropout_rate=model_config.dropout_rate,
      fast_conv=model_config.fast_conv)


BUILDERS = {"da_imrn": build_da_imrn, **{name: build_ssan for name in ssan.VARIANTS}}


def compiler_options(model_config) -> dict | None:
  """XLA options for the programs that run the config's network (jax.jit's compiler_options):
  loop_conv's CPU options for a fast-form DA-IMRN with 2-D spatial convolutions (PU, SV, IP's
  multi-scale option); None otherwise. IP's code network has band convolutions only, which
  YNNPACK runs faster: with the options its step took 20 % longer (41 against 52 patches/s)."""
  if model_config.name != "da_imrn" or not model_config.fast_conv:
    return None
  spatial = build_da_imrn(model_config, 1).spatial_kernels
  return loop_conv.compiler_options() if any(tuple(k[:2]) != (1, 1) for k in spatial) else None


def build_model(model_config, num_classes: int):
  if model_config.name not in BUILDERS:
    raise ValueError(f"Unknown network {model_config.name!r}; available: {', '.join(BUILDERS)}.")
  return BUILDERS[model_config.name](model_config, num_classes)
