r"""Kennedy Space Center (512 x 614, 176 bands, 13 classes): DA-IMRN on a calibrated `blocks` split.

  python launch/fetch_data.py --scene=ksc         # KSC.mat and KSC_gt.mat from GIC (not bundled)
  python launch/show_scene.py --config=configs/ksc.py --out=/tmp/ksc    # the scene and calibration
  python launch/make_splits.py --config=configs/ksc.py --partition=1 --out=/tmp/ksc_split
  python launch/train.py --config=configs/ksc.py --workdir=/tmp/ksc_p1

Files (hsi_jax/data/scenes.py, "ksc"): KSC.mat holding array `KSC` (512 x 614 x 176) and KSC_gt.mat
holding `KSC_gt` (512 x 614, classes 1..13), in config.data.root, $HSI_DATA_DIR or the user cache.
No content hash is registered (the files were never at hand here): the loader checks their shape,
band count and class ids only.

Neither paper uses this scene, so nothing here is a published setting. The partition takes Indian
Pines' geometry (6x6 blocks, 4x4 windows, k_keep 8: KSC's classes are small scattered regions too)
and leaves pixel_ratio / val_ratio / accept to be calibrated on the ground truth when the split is
made, for train and val each split.calibration.fraction (11 %) of the labelled pixels (as for a
user's own scene: configs/common.py, calibrated_split_config; split.json records the values). The
DA-IMRN band schedule is models/da_imrn.py's band_schedule for 176 bands (stage 0: valid band
kernel 77 to reach 100 bands, then the paper's stages); the spatial branches the paper's 3/5/7.

Options after ':' -- model=da_imrn|ssan|arnn|acnn|rnn|cnn|knn|svm, protocol=blocks|pixels, runlocal
(same pipeline, shrunk for a CPU).
"""

from hsi_jax import config_util

common = config_util.load_sibling(__file__, "common")


def get_config(arg=None):
  return common.registered_scene_config("ksc", arg)
