"""K seeds of one config: the single-run configs they stand for, their devices and their keys.

`config.num_seeds = K` with `config.seeds_over = "init"`: model seeds seed, seed+1, ... over one
partition; with `"partitions"`: partitions partition, partition+1, ... (each with model seed `seed`).
"""

from __future__ import annotations

import copy

import jax

SEEDS_OVER = ("init", "partitions")


def seed_configs(config) -> list:
  """The K single-run configs (num_seeds = 1) the seeds of `config` stand for."""
  if config.seeds_over not in SEEDS_OVER:
    raise ValueError(f"seeds_over must be one of {SEEDS_OVER}, got {config.seeds_over!r}.")
  if config.num_seeds < 1:
    raise ValueError(f"num_seeds must be >= 1, got {config.num_seeds}.")
  configs = []
  for k in range(config.num_seeds):
    single = copy.deepcopy(config)
    single.num_seeds = 1
    if config.seeds_over == "init":
      single.seed = config.seed + k
    else:
      single.partition = config.partition + k
    configs.append(single)
  return configs


def round_key(key, round_index: int):
  """The key of round r (its example order and dropout) from a seed's key: fold_in(fold_in(key,
  1), r); the parameters come from fold_in(key, 0)."""
  return jax.random.fold_in(jax.random.fold_in(key, 1), round_index)
