r"""Prints one JSON line of throughput figures for a config's network.

  python launch/bench.py --config=configs/pu.py --steps=10
  python launch/bench.py --config=configs/ip.py --config.model.fast_conv=False   # plain 3-D convs
"""

import json

from absl import app
from absl import flags
from ml_collections import config_flags

from hsi_jax import benchmark

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/pu.py.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed calls after warm-up (median reported).")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  print(json.dumps(benchmark.benchmark(_CONFIG.value, steps=_STEPS.value)))


if __name__ == "__main__":
  app.run(main)
