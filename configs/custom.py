r"""A user's own scene, from its files alone: no entry in the package's registry.

  python launch/show_scene.py --config=configs/custom.py:cube=CUBE.mat,gt=GT.mat --out=DIR
  python launch/train.py --config=configs/custom.py:cube=CUBE.mat,gt=GT.mat --workdir=DIR
  python launch/train.py --config=configs/custom.py:cube=C.npz,gt=G.npz,model=knn,runlocal --workdir=DIR
  python launch/train.py --config=configs/custom.py:cube=scene.hdr,gt=labels.tif --workdir=DIR
  python launch/train.py --config=configs/custom.py:cube=C.mat,gt=G.mat \
      --config.split.file=masks.npz --workdir=DIR      # a benchmark's fixed train / test masks

Options after ':' -- cube=PATH, gt=PATH (.mat v5 / v7.3, .npz, GeoTIFF, or ENVI: the .hdr or its
data file; the ground truth a single band of class ids; required), cube_key= / gt_key=
(the array's name when a file holds several), classes=PATH (class names, one a line, in increasing
id order), model=da_imrn|ssan|arnn|acnn|rnn|cnn|knn|svm, protocol=blocks|pixels, runlocal,
block= / patch= / k_keep= (the `blocks` geometry; default Indian Pines' 6 / 4 / 8), fraction= (train
and val each this share of the labelled pixels, default 0.11, near Indian Pines').

The config records only these choices (config.json shows them; loading it reads no data file).
What follows from the files is derived when the run uses them, and said and recorded then
(data/custom.py): the size and band count, the classes present (their ids in the file; the run
numbers them 1..C in increasing order), their names and the bands of an RGB composite when the
scene is read; the `blocks` split's pixel_ratio / val_ratio / accept bounds, calibrated on the
ground truth for split.calibration.fraction, when the split is made (split.json: `calibrated`,
`custom_scene`); the DA-IMRN band schedule for the band count (model.band_strides = None:
models/da_imrn.py, band_schedule; the paper's for 103, 200 and 204 bands) when the network is
built. So --config.split.block=... (or any geometry leaf) is calibrated for like block=.
"""

import pathlib

from hsi_jax import config_util

common = config_util.load_sibling(__file__, "common")


def _absolute(path: str) -> str:
  """The path as given, made absolute (config.json then names the file wherever it is read)."""
  return str(pathlib.Path(path).expanduser().resolve()) if path else ""


def get_config(arg=None):
  options = config_util.parse_arg(
      arg, cube="", gt="", cube_key="", gt_key="", classes="", model="da_imrn", protocol="blocks",
      runlocal=False, block=6, patch=4, k_keep=8, fraction=common.CALIBRATION_FRACTION)
  if not options.cube or not options.gt:
    raise config_util.ConfigError("configs/custom.py needs both files: "
                                  "configs/custom.py:cube=PATH,gt=PATH.")
  config = common.base_config("custom")
  config.data.update(cube=_absolute(options.cube), gt=_absolute(options.gt),
                     cube_key=options.cube_key, gt_key=options.gt_key,  # "": the file's only array
                     classes=_absolute(options.classes))  # "": "class <id>"
  config.split = common.calibrated_split_config(options.protocol, block=options.block,
                                                patch=options.patch, k_keep=options.k_keep,
                                                fraction=options.fraction)
  calibration = config.split.calibration
  if not calibration.tolerance < options.fraction <= calibration.max_fraction:
    raise config_util.ConfigError(f"fraction={options.fraction} must lie in "
                                  f"({calibration.tolerance}, {calibration.max_fraction}]: the "
                                  "share of the labelled pixels in train, and again in val.")
  common.model_sections(config, model=options.model, runlocal=options.runlocal,
                        band_strides=None, valid_kernels=None)
  return config
