r"""Makes a split without training: split.npz, split.json, split.png in --out.

  python launch/make_splits.py --config=configs/ip.py --partition=1 --out=/tmp/ip_split
  python launch/make_splits.py --config=configs/pu.py:protocol=pixels --partition=3 --out=/tmp/pu_px
"""

from absl import flags
from ml_collections import config_flags

from hsi_jax import cli
from hsi_jax.data import split_files

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/ip.py.")
_PARTITION = flags.DEFINE_integer("partition", None, "Partition k (drawn with split seed k); "
                                  "default: config.partition.")
_OUT = flags.DEFINE_string("out", None, "Directory for split.npz / split.json / split.png.")
flags.mark_flags_as_required(["config", "out"])


def main(argv):
  del argv
  split, labels, seconds = split_files.split_from_config(_CONFIG.value, _PARTITION.value)
  info = split_files.save_split(_OUT.value, split, labels)
  print(split_files.format_summary(info))
  print(f"split made in {seconds:.3f} s; written to {_OUT.value}")


if __name__ == "__main__":
  cli.run_main(main)
