r"""Every model under both protocols over partitions 1-5: the mean +- std table with the leakage audit.

  python launch/compare.py --config=configs/ip.py:runlocal --root=/tmp/compare \
      --models=knn,svm,rnn,cnn,arnn,acnn,ssan --out=results/ip_compare.md

Runs live in ROOT/<model>_<protocol>/partition<k>; a sweep started again skips finished runs and
resumes an interrupted one.
"""

from absl import flags
from absl import logging

from ml_collections import config_flags

from hsi_jax import cli, sweep

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/ip.py", "Config file and options (no model=); --config.x=... overrides work.")
_MODELS = flags.DEFINE_list("models", ["knn", "svm", "rnn", "cnn", "arnn", "acnn", "ssan"],
                            "Models (rows).")
_PROTOCOLS = flags.DEFINE_list("protocols", ["pixels", "blocks"], "Protocols (columns).")
_PARTITIONS = flags.DEFINE_list("partitions", ["1", "2", "3", "4", "5"], "Partitions (split seeds).")
_ROOT = flags.DEFINE_string("root", None, "Directory holding one workdir per run.")
_OUT = flags.DEFINE_string("out", None, "Markdown file for the table (and .json beside it).")
flags.mark_flags_as_required(["root"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  sweep.table_main(flags.FLAGS["config"], lambda config_file, overrides: sweep.compare_protocols(
      config_file, _MODELS.value, _PROTOCOLS.value, [int(p) for p in _PARTITIONS.value],
      _ROOT.value, overrides), _OUT.value)


if __name__ == "__main__":
  cli.run_main(main)
