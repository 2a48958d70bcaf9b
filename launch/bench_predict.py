r"""Prediction's memory and speed on a large cube (results/bench.md, "Prediction").

  python launch/bench_predict.py --synthetic=/tmp/big.tif --height=2000 --width=1500
  python launch/bench_predict.py --workdir=W --cube=/tmp/big.tif --out=/tmp/pred
  python launch/bench_predict.py --workdir=W --cube=/tmp/big.tif --out=/tmp/pred --in_memory

Run each path in its own process: the peak resident memory printed is the process's.
"""

import json

from absl import flags

from hsi_jax import cli

_SYNTHETIC = flags.DEFINE_string("synthetic", None, "Write the synthetic int16 GeoTIFF here.")
_HEIGHT = flags.DEFINE_integer("height", 2000, "--synthetic: rows.")
_WIDTH = flags.DEFINE_integer("width", 1500, "--synthetic: columns.")
_SEED = flags.DEFINE_integer("seed", 0, "--synthetic: the noise's seed.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory of a finished run.")
_CUBE = flags.DEFINE_string("cube", None, "The cube to predict.")
_OUT = flags.DEFINE_string("out", None, "Output directory of the tiled path (predict's).")
_IN_MEMORY = flags.DEFINE_bool("in_memory", False, "Read the cube whole first, as float32.")
_TILE = flags.DEFINE_integer("tile", 256, "Tile side in pixels.")


def main(argv):
  del argv
  from hsi_jax import benchmark  # noqa: PLC0415  (flags first: --help stays fast)
  if _SYNTHETIC.value:
    figures = benchmark.write_synthetic_cube(_SYNTHETIC.value, _HEIGHT.value, _WIDTH.value,
                                             _SEED.value)
  else:
    figures = benchmark.benchmark_predict(_WORKDIR.value, _CUBE.value, _OUT.value,
                                          _IN_MEMORY.value, _TILE.value)
  print(json.dumps(figures))


if __name__ == "__main__":
  cli.run_main(main)
