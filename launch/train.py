r"""Trains and evaluates one run: python launch/train.py --config=configs/ip.py --workdir=DIR

Any config leaf can be overridden (--config.train.epochs=5, --config.partition=3). Starting again
with the same --workdir resumes an interrupted run; a finished workdir is refused.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from hsi_jax.train import loop

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/ip.py.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for this run's files.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  results = loop.run(_CONFIG.value, _WORKDIR.value)
  print(f"{loop.summary_line(results)} -> {_WORKDIR.value}/results.json")


if __name__ == "__main__":
  app.run(main)
