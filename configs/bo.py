r"""Botswana (1476 x 256, 145 bands, 14 classes): DA-IMRN on a calibrated `blocks` split.

  python launch/fetch_data.py --scene=bo          # Botswana.mat and Botswana_gt.mat (not bundled)
  python launch/show_scene.py --config=configs/bo.py --out=/tmp/bo      # the scene and calibration
  python launch/make_splits.py --config=configs/bo.py --partition=1 --out=/tmp/bo_split
  python launch/train.py --config=configs/bo.py --workdir=/tmp/bo_p1

Files (hsi_jax/data/scenes.py, "bo"): Botswana.mat holding array `Botswana` (1476 x 256 x 145) and
Botswana_gt.mat holding `Botswana_gt` (1476 x 256, classes 1..14), in config.data.root,
$HSI_DATA_DIR or the user cache. No content hash is registered (the files were never at hand
here): the loader checks their shape, band count and class ids only.

Neither paper uses this scene, so nothing here is a published setting. The partition takes Indian
Pines' geometry (6x6 blocks, 4x4 windows, k_keep 8: Botswana's 3,248 labelled pixels lie in small
scattered regions) and leaves pixel_ratio / val_ratio / accept to be calibrated on the ground
truth when the split is made, for train and val each split.calibration.fraction (11 %) of the
labelled pixels (as for a user's own scene: configs/common.py, calibrated_split_config;
split.json records the values). The DA-IMRN band schedule is models/da_imrn.py's band_schedule for
145 bands (stage 0: valid band kernel 46 to reach 100 bands, then the paper's stages); the spatial
branches the paper's 3/5/7.

Options after ':' -- model=da_imrn|ssan|arnn|acnn|rnn|cnn|knn|svm, protocol=blocks|pixels, runlocal
(same pipeline, shrunk for a CPU).
"""

from hsi_jax import config_util

common = config_util.load_sibling(__file__, "common")


def get_config(arg=None):
  return common.registered_scene_config("bo", arg)
