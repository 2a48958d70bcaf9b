"""The persistent compilation cache: a program is compiled once per machine, then loaded.

Every run, partition of a sweep, prediction and benchmark compiles the same few programs; with the
cache on (the default) a later process that compiles a program already compiled loads the
executable from disk instead. JAX keys each entry by the program itself, the jaxlib and platform
versions, the XLA flags (so the forced host device count), the compile options and the devices:
an entry is used only where the same compile would have run. An entry that cannot be read
(truncated, garbled, half-written by another process) is warned about by JAX and the program is
compiled again; nothing fails for a cache.

Every program is kept, the small ones too (MIN_COMPILE_SECONDS = 0): a DA-IMRN run compiles 18
programs, five of them large; loading the small ones saves a later process their compiles. What a
cached run still pays is tracing and lowering its programs in Python (the key is the lowered
program) and deserialising the executables: for the training chunk of `configs/ip.py:runlocal`,
2.7 + 1.1 + 2.4 s on this project's CPU (results/bench.md, "What a cached run still pays").

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
MIN_COMPILE_SECONDS = 0.0  # every program (see above)


class _Counts:
  """Compile requests that consulted the cache and those it answered, in this process
  (jax.monitoring's events), counted once `enable` has run."""
  requests = 0
  hits = 0
  listening = False

  @classmethod
  def listen(cls) -> None:
    if not cls.listening:
      jax.monitoring.register_event_listener(cls._on_event)
      cls.listening = True

  @classmethod
  def _on_event(cls, event: str, **_) -> None:
    if event == "/jax/compilation_cache/compile_requests_use_cache":
      cls.requests += 1
    elif event == "/jax/compilation_cache/cache_hits":
      cls.hits += 1


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
    _Counts.listen()
  return where


def counts() -> tuple[int, int]:
  """(compile requests that consulted the cache, of them loaded from it) so far in this process;
  (0, 0) before `enable`. Differences of two calls describe what happened between them."""
  return _Counts.requests, _Counts.hits


def all_loaded(before: tuple[int, int]) -> bool:
  """Whether every program compiled since `before` (a `counts()`) was loaded from the cache, at
  least one."""
  requests, hits = counts()
  return hits > before[1] and hits - before[1] == requests - before[0]
