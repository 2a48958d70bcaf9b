r"""The comparison table: every model of the config's `compare` section under each protocol over
its partitions, mean +- std, with parameters, forward FLOPs, training seconds, the leakage audit and
the masked-input control.

  python launch/compare.py --config=configs/ip.py:runlocal --root=/tmp/compare \
      --out=results/ip_zoo/ip_zoo.md
  python launch/compare.py --config=configs/ip.py:runlocal --root=/tmp/compare \
      --config.compare.models="('svm','cnn3d')" --config.compare.partitions="(1,2)"

Runs live in ROOT/<model>_<protocol>/partition<k>; a sweep started again skips finished runs and
resumes an interrupted one.
"""

from absl import flags
from absl import logging

from ml_collections import config_flags

from hsi_jax import cli, sweep

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/ip.py", "Config file and options (no model=); the table is its `compare` "
    "section; --config.x=... overrides work.")
_ROOT = flags.DEFINE_string("root", None, "Directory holding one workdir per run.")
_OUT = flags.DEFINE_string("out", None, "Markdown file for the table (and .json beside it).")
flags.mark_flags_as_required(["root"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  table = _CONFIG.value.compare
  sweep.table_main(flags.FLAGS["config"], lambda config_file, overrides: sweep.compare_protocols(
      config_file, table.models, table.protocols, table.partitions, _ROOT.value, overrides),
      _OUT.value)


if __name__ == "__main__":
  cli.run_main(main)
