"""The persistent compilation cache: a program is compiled once per machine, then loaded.

Every run, partition of a sweep, prediction and benchmark compiles the same few programs; with the
cache on (the default) a later process that compiles a program already compiled loads the
executable from disk instead. JAX keys each entry by the program itself, the jaxlib and platform
versions, the XLA flags (so the forced host device count), the compile options and the devices:
an entry is used only where the same compile would have run. An entry that cannot be read
(truncated, garbled, half-written by another process) is warned about by JAX and the program is
compiled again; nothing fails for a cache.

Not yet cached: a program holding a host callback, which JAX never writes (the callback's
address is baked into it). The training round holds one, the progress bar's (train/progress.py),
so it is compiled by every run; the rest (initialisation, validation, the map's tiles, selection)
are loaded.

Where: $HSI_JAX_COMPILE_CACHE (a directory, or `off`), else the config's `compile_cache` leaf
(the same), else `$XDG_CACHE_HOME/hsi_jax/compile` (default `~/.cache/hsi_jax/compile`). The
first call of `enable` in a process decides: JAX opens its cache once.
"""

from __future__ import annotations

import os
import pathlib
from typing import Optional

import jax

ENV = "HSI_JAX_COMPILE_CACHE"
OFF = ("off", "none", "false", "0")
MIN_COMPILE_SECONDS = 0.5  # programs compiled faster are not worth a file


class _Hits:
  """Cache hits in this process (jax.monitoring's events), counted once `enable` has run."""
  count = 0
  listening = False

  @classmethod
  def listen(cls) -> None:
    if not cls.listening:
      jax.monitoring.register_event_listener(cls._on_event)
      cls.listening = True

  @classmethod
  def _on_event(cls, event: str, **_) -> None:
    if event == "/jax/compilation_cache/cache_hits":
      cls.count += 1


def cache_dir(config_value: str = "") -> Optional[pathlib.Path]:
  """The cache's directory ($HSI_JAX_COMPILE_CACHE, else config_value, else the user's cache
  directory); None when either says `off`."""
  value = os.environ.get(ENV, "").strip() or (config_value or "").strip()
  if value.lower() in OFF:
    return None
  if value:
    return pathlib.Path(value).expanduser()
  base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base) / "hsi_jax" / "compile"


def enable(config_value: str = "") -> Optional[pathlib.Path]:
  """Turns the cache on at cache_dir(config_value) (or off); -> the directory, None when off."""
  where = cache_dir(config_value)
  jax.config.update("jax_enable_compilation_cache", where is not None)
  if where is not None:
    jax.config.update("jax_compilation_cache_dir", str(where))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    _Hits.listen()
  return where


def hits() -> int:
  """Programs loaded from the cache so far in this process (0 before `enable`)."""
  return _Hits.count
