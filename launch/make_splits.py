r"""Makes a split without training: split.npz, split.json, split.png in --out.

  python launch/make_splits.py --config=configs/ip.py --partition=1 --out=/tmp/ip_split
  python launch/make_splits.py --config=configs/pu.py:protocol=pixels --partition=3 --out=/tmp/pu_px
"""

from absl import flags
from ml_collections import config_flags

import pathlib

from hsi_jax import cli, errors, validate
from hsi_jax.data import split_files, split_sources, split_tables

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/ip.py.")
_PARTITION = flags.DEFINE_integer("partition", None, "Partition k (drawn with split seed k); "
                                  "default: config.partition.")
_OUT = flags.DEFINE_string("out", None, "Directory for split.npz / split.json / split.png.")
flags.mark_flags_as_required(["config", "out"])


def main(argv):
  del argv
  config = _CONFIG.value
  if _PARTITION.value is not None:
    config.partition = _PARTITION.value
  validate.validate(config)  # the rules of a run: --config.split.per_class=-5 is refused here too
  out = pathlib.Path(_OUT.value).expanduser()
  if out.exists() and not out.is_dir():
    raise errors.UserError(f"--out={out} is a file, not a directory; give a directory for "
                         "split.npz / split.json / split.png.")
  split, labels, seconds = split_sources.split_from_config(config)
  info = split_files.save_split(out, split, labels)
  print(split_tables.format_summary(info))
  print(f"split made in {seconds:.3f} s; written to {_OUT.value}")


if __name__ == "__main__":
  cli.run_main(main)
