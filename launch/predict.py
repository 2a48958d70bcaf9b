r"""Classifies every pixel of a scene with a trained run (hsi_jax/predict.py says what it writes).

  python launch/predict.py --workdir=W --cube=scene.tif --out=DIR
  python launch/predict.py --workdir=W --cube=scene.hdr --out=DIR --probabilities    # ENVI
  python launch/predict.py --workdir=W --cube=C.mat --cube_key=cube --out=DIR --seed=2
"""

from absl import flags

from hsi_jax import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory of a finished run.")
_CUBE = flags.DEFINE_string("cube", None, "The cube: .mat / .npz, GeoTIFF, or ENVI (.hdr or its "
                            "data file).")
_CUBE_KEY = flags.DEFINE_string("cube_key", "", "Array name in a .mat / .npz holding several.")
_OUT = flags.DEFINE_string("out", None, "Directory for map.npy, map.png, map.tif, predict.json.")
_SEED = flags.DEFINE_integer("seed", None, "Run seed<k>/ or partition<k>/ of a K-run workdir "
                             "(default: the one of best validation accuracy).")
_PROBABILITIES = flags.DEFINE_bool("probabilities", False, "Also write probabilities.npy.")
_TILE = flags.DEFINE_integer("tile", 256, "Tile side in pixels (memory grows with its square).")
flags.mark_flags_as_required(["workdir", "cube", "out"])


def main(argv):
  del argv
  from hsi_jax import inference, predict  # noqa: PLC0415  (flags first: --help stays fast)
  summary = predict.predict(_WORKDIR.value, _CUBE.value, _OUT.value, _CUBE_KEY.value,
                            _SEED.value, _PROBABILITIES.value, _TILE.value,
                            inference.Progress("predict"))
  for warning in summary["warnings"]:
    print(f"warning: {warning}")
  print(f"{summary['shape'][0]}x{summary['shape'][1]} pixels in {summary['seconds']:.1f} s "
        f"({summary['pixels_per_second']:,.0f} px/s), {summary['no_data_pixels']:,} without "
        f"data -> {_OUT.value}: {', '.join(summary['files'])}")


if __name__ == "__main__":
  cli.run_main(main)
