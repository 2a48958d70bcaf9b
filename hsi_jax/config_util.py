"""Helpers for configs/*.py (big_vision style): typed options after ':' and shared sections.

A config file's `get_config(arg)` receives the text after the colon in `configs/ip.py:runlocal,
protocol=pixels`. `parse_arg` turns it into typed options: a bare word sets a boolean to True,
`key=value` takes the type of the option's default. Unknown options are an error listing the valid
ones.
"""

from __future__ import annotations

import importlib.util
import pathlib
from typing import Optional

import ml_collections
from ml_collections import config_dict


class ConfigError(ValueError):
  """A config string or option that cannot be used."""


def parse_arg(arg: Optional[str], **defaults) -> ml_collections.ConfigDict:
  """'runlocal,protocol=pixels' -> ConfigDict(runlocal=True, protocol='pixels', ...)."""
  options = dict(defaults)
  for item in filter(None, (part.strip() for part in (arg or "").split(","))):
    key, has_value, value = item.partition("=")
    if key not in defaults:
      raise ConfigError(f"Unknown config option {key!r} in {arg!r}; valid options: "
                        + ", ".join(f"{k} (default {v!r})" for k, v in defaults.items()) + ".")
    default = defaults[key]
    if not has_value:
      if not isinstance(default, bool):
        raise ConfigError(f"Config option {key!r} needs a value ({key}=...).")
      options[key] = True
    elif isinstance(default, bool):
      if value.lower() not in ("true", "false", "1", "0"):
        raise ConfigError(f"Config option {key!r} is a boolean, got {value!r}.")
      options[key] = value.lower() in ("true", "1")
    else:
      try:
        options[key] = type(default)(value) if default is not None else value
      except ValueError:
        raise ConfigError(f"Config option {key!r} must be a {type(default).__name__}, "
                          f"got {value!r}.") from None
  return ml_collections.ConfigDict(options)


def split_config(protocol: str, *, block: int, patch: int, pixel_ratio: float, val_ratio: float,
                 k_keep: int, accept: tuple[int, int]) -> ml_collections.ConfigDict:
  """The `split` section: `blocks` parameters of the scene, and the SSAN `pixels` defaults."""
  if protocol not in ("blocks", "pixels"):
    raise ConfigError(f"Unknown protocol {protocol!r}; valid: blocks, pixels.")
  return ml_collections.ConfigDict(dict(
      protocol=protocol,
      # blocks (DA-IMRN leakage-free partition)
      block=block, patch=patch, pixel_ratio=pixel_ratio, val_ratio=val_ratio, k_keep=k_keep,
      accept=accept, max_attempts=100,
      # pixels (SSAN: 100 train / 100 val / rest test per class); set per_class or fraction.
      per_class=config_dict.placeholder(int) if protocol == "blocks" else 100,
      fraction=config_dict.placeholder(float),
      val_per_class=100,
  ))


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads 'path/to/config.py[:arg]' the way --config does (for tests and library callers)."""
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
  if module_spec is None or not pathlib.Path(path).is_file():
    raise ConfigError(f"Config file {path!r} not found.")
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def base_config(scene: str) -> ml_collections.ConfigDict:
  """Sections every experiment has: scene, data root, partition and training seeds."""
  config = ml_collections.ConfigDict()
  config.scene = scene
  config.data = ml_collections.ConfigDict(dict(root=""))  # "" = HSI_DATA_DIR or the user cache
  config.partition = 1  # split seed: partition k = seed k (decision 9)
  config.seed = 0       # model initialisation and data order
  return config
