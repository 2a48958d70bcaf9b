r"""Ablation table: config variants, each trained with several seeds in one vmapped program.

  python launch/ablate.py --config=configs/ip.py:runlocal --num_seeds=5 --root=/tmp/ablate \
      --out=results/ip_ablation_runlocal.md                         # the DA-IMRN paper's ablation
  python launch/ablate.py --config=configs/ip.py --root=/tmp/lr \
      --variant=lr1e-3:train.learning_rate=1e-3 --variant=lr3e-4:train.learning_rate=3e-4

A --variant is NAME:LEAF=VALUE[;LEAF=VALUE...] (no leaf: the base config). Without --variant the
DA-IMRN ablation runs: full, no_scam, no_sam, no_attention, no_interaction, single_scale.
--config.x=VALUE overrides apply to every variant (--config.seeds_over=partitions: the seeds are
partitions 1..num_seeds).
Each variant's run lives in ROOT/<name>; started again, finished variants are read back.
"""

from absl import flags
from absl import logging

from ml_collections import config_flags

from hsi_jax import cli, sweep

_CONFIG = config_flags.DEFINE_config_file("config", "configs/ip.py:runlocal",
                                          "Base config file and options (--config.x=... overrides work).")
_VARIANTS = flags.DEFINE_multi_string("variant", [], "NAME:LEAF=VALUE;LEAF=VALUE (repeatable).")
_NUM_SEEDS = flags.DEFINE_integer("num_seeds", 5, "Seeds per variant (one vmapped program).")
_ROOT = flags.DEFINE_string("root", None, "Directory holding one workdir per variant.")
_OUT = flags.DEFINE_string("out", None, "Markdown file for the table (and .json beside it).")
flags.mark_flags_as_required(["root"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  variants = sweep.parse_variants(_VARIANTS.value) or sweep.DA_IMRN_ABLATION
  sweep.table_main(flags.FLAGS["config"], lambda config_file, overrides: sweep.ablate(
      config_file, variants, _NUM_SEEDS.value, _ROOT.value, overrides), _OUT.value)


if __name__ == "__main__":
  cli.run_main(main)
