"""Helpers for configs/*.py (big_vision style): typed options after ':', loading a config by path.

A config file's `get_config(arg)` receives the text after the colon in `configs/ip.py:runlocal,
protocol=pixels`. `parse_arg` turns it into typed options: a bare word sets a boolean to True,
`key=value` takes the type of the option's default. Unknown options are an error listing the valid
ones.
"""

from __future__ import annotations

import copy
import importlib.util
import pathlib
from typing import Optional

import ml_collections

from hsi_jax import errors


class ConfigError(errors.UserError, ValueError):
  """A config string or option that cannot be used."""


# Leaves added to the configs after runs were made: (dotted path, the model it belongs to or None
# for every model, the value every earlier run had). A config a run saved (config.json, a bundle's)
# that lacks one is a config of that value.
ADDED_LEAVES = (("compile_cache", None, ""), ("model.initializer", "da_imrn", "he_normal"))


def with_added_leaves(saved: dict) -> dict:
  """A saved config's dict (config.json, bundle.json's "config") with ADDED_LEAVES it lacks
  filled in (a copy): what its run computed, in today's leaves."""
  saved = copy.deepcopy(saved)
  for path, model, value in ADDED_LEAVES:
    if model is not None and saved.get("model", {}).get("name") != model:
      continue
    *parents, leaf = path.split(".")
    node = saved
    for part in parents:
      node = node.setdefault(part, {})
    node.setdefault(leaf, value)
  return saved


def typed(current, text: str, name: str):
  """`text` converted to the type of `current` (the default or the leaf it replaces): booleans
  from true / false / 1 / 0; a text or None current keeps the text. A ConfigError names `name`."""
  if not isinstance(text, str) or isinstance(current, str) or current is None:
    return text
  if isinstance(current, bool):
    if text.lower() not in ("true", "false", "1", "0"):
      raise ConfigError(f"{name} is a boolean (true or false), got {text!r}.")
    return text.lower() in ("true", "1")
  try:
    return type(current)(text)
  except (TypeError, ValueError):
    raise ConfigError(f"{name} must be a {type(current).__name__}, got {text!r}.") from None


def parse_arg(arg: Optional[str], **defaults) -> ml_collections.ConfigDict:
  """'runlocal,protocol=pixels' -> ConfigDict(runlocal=True, protocol='pixels', ...)."""
  options = dict(defaults)
  for item in filter(None, (part.strip() for part in (arg or "").split(","))):
    key, has_value, value = item.partition("=")
    if key not in defaults:
      raise ConfigError(f"Unknown config option {key!r} in {arg!r}; valid options: "
                        + ", ".join(f"{k} (default {v!r})" for k, v in defaults.items()) + ".")
    if not has_value:
      if not isinstance(defaults[key], bool):
        raise ConfigError(f"Config option {key!r} needs a value ({key}=...).")
      options[key] = True
    else:
      options[key] = typed(defaults[key], value, f"Config option {key!r}")
  return ml_collections.ConfigDict(options)


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads 'path/to/config.py[:arg]' the way --config does (for tests and library callers)."""
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
  if module_spec is None or not pathlib.Path(path).is_file():
    raise ConfigError(f"Config file {path!r} not found.")
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def with_options(spec: str, **options) -> str:
  """'configs/ip.py:runlocal' + model='ssan' -> 'configs/ip.py:runlocal,model=ssan'."""
  path, _, arg = spec.partition(":")
  items = [item for item in arg.split(",") if item.strip()]
  items += [f"{key}={value}" for key, value in options.items()]
  return f"{path}:{','.join(items)}"


def load_sibling(config_file: str, name: str):
  """The module `name`.py beside a config file (configs/common.py for configs/ip.py): config files
  are loaded by path (--config=configs/ip.py), not as a package, so they load their shared
  sections this way."""
  path = pathlib.Path(config_file).with_name(f"{name}.py")
  module_spec = importlib.util.spec_from_file_location(f"hsi_jax_configs_{name}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module
