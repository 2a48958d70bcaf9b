r"""A user's own scene, from its files alone: no entry in the package's registry.

  python launch/show_scene.py --config=configs/custom.py:cube=CUBE.mat,gt=GT.mat --out=DIR
  python launch/train.py --config=configs/custom.py:cube=CUBE.mat,gt=GT.mat --workdir=DIR
  python launch/train.py --config=configs/custom.py:cube=C.npz,gt=G.npz,model=knn,runlocal --workdir=DIR
  python launch/train.py --config=configs/custom.py:cube=C.mat,gt=G.mat \
      --config.split.file=masks.npz --workdir=DIR      # a benchmark's fixed train / test masks

Options after ':' -- cube=PATH, gt=PATH (.mat v5 / v7.3 or .npz; required), cube_key= / gt_key=
(the array's name when a file holds several), classes=PATH (class names, one a line, in increasing
id order), model=da_imrn|ssan|arnn|acnn|rnn|cnn|knn|svm, protocol=blocks|pixels, runlocal,
block= / patch= / k_keep= (the `blocks` geometry; default Indian Pines' 6 / 4 / 8), fraction= (train
and val each this share of the labelled pixels, default 0.11, near Indian Pines').

Everything else is derived from the files and written into the config (so config.json shows it):
the size and band count, the classes present (their ids in the file are kept in data.class_ids;
the run numbers them 1..C in that order), the bands of an RGB composite, the DA-IMRN band schedule
for the band count (models/da_imrn.py: band_schedule; the paper's for 103, 200 and 204 bands), and
the `blocks` split's pixel_ratio / val_ratio / accept bounds, calibrated on the ground truth for
the fraction asked (data/custom.py). Change the geometry with block= / patch= / k_keep= after the
colon rather than --config.split.block=..., which would leave the calibration behind.
"""

from hsi_jax import config_util
from hsi_jax.data import custom
from hsi_jax.models import da_imrn

MAX_FRACTION = 0.3  # train and val together then leave at least 40 % of the pixels to test

common = config_util.load_sibling(__file__, "common")


def get_config(arg=None):
  options = config_util.parse_arg(
      arg, cube="", gt="", cube_key="", gt_key="", classes="", model="da_imrn", protocol="blocks",
      runlocal=False, block=6, patch=4, k_keep=8, fraction=custom.DEFAULT_FRACTION)
  if not custom.DEFAULT_TOLERANCE < options.fraction <= MAX_FRACTION:
    raise config_util.ConfigError(f"fraction={options.fraction} must lie in "
                                  f"({custom.DEFAULT_TOLERANCE}, {MAX_FRACTION}]: the share of the "
                                  "labelled pixels in train, and again in val.")
  scene = custom.describe(options.cube, options.gt, options.cube_key, options.gt_key,
                          options.classes)
  config = common.base_config("custom")
  config.data.update(
      cube=scene["cube"], gt=scene["gt"], cube_key=scene["cube_key"], gt_key=scene["gt_key"],
      shape=scene["shape"], num_bands=scene["num_bands"], class_ids=scene["class_ids"],
      class_names=scene["class_names"], rgb_bands=scene["rgb_bands"])
  blocks = custom.blocks_settings(scene["labels"], block=options.block, patch=options.patch,
                                  k_keep=options.k_keep, fraction=options.fraction)
  config.split = common.split_config(options.protocol, block=options.block, patch=options.patch,
                                     k_keep=options.k_keep, **blocks)
  schedule = {}
  if options.model == "da_imrn":
    if scene["num_bands"] < 3:
      raise config_util.ConfigError(f"DA-IMRN needs a cube of at least 3 bands, {scene['cube']} "
                                    f"has {scene['num_bands']}; use another model=.")
    schedule = dict(zip(("band_strides", "valid_kernels"), da_imrn.band_schedule(scene["num_bands"])))
  common.model_sections(config, model=options.model, runlocal=options.runlocal, **schedule)
  return config
