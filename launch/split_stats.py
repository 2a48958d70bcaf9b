r"""Acceptance statistics of a config's split over many seeds (for calibrating split ratios).

  python launch/split_stats.py --config=configs/pu.py --seeds=20

Prints one markdown row: attempts until acceptance per seed, mean train / leaked / val / test
totals, and the mean and worst time per split.
"""

from absl import flags
from ml_collections import config_flags

from hsi_jax import cli
from hsi_jax.data import split_tables

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/ip.py.")
_SEEDS = flags.DEFINE_integer("seeds", 20, "Seeds 1..N.")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  print(split_tables.format_stats(_CONFIG.value, range(1, _SEEDS.value + 1)))


if __name__ == "__main__":
  cli.run_main(main)
