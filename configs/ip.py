r"""Indian Pines (corrected, 200 bands): DA-IMRN on the leakage-free `blocks` partition.

  python launch/train.py --config=configs/ip.py --workdir=/tmp/ip_p1          # partition 1, full
  python launch/train.py --config=configs/ip.py:runlocal --workdir=/tmp/ip_rl   # ~2 min on 2 cores
  python launch/make_splits.py --config=configs/ip.py --seed=1 --out=/tmp/ip_split
  python launch/make_splits.py --config=configs/ip.py:protocol=pixels --seed=1 --out=/tmp/ip_px

Partition (PAPERS.md §1.6): 6x6 blocks, 4x4 windows, 9 train pixels kept per block, train and val
totals accepted in [1100, 1200]. Decision 17 names pixel_ratio 0.15 / val_ratio 0.06; with our
generator (no truncated border blocks) those give train 1262 +- 27 and accept under 1 % of attempts,
so the defaults are recalibrated to 0.135 / 0.054 (train 1167 +- 26, val 1128 +- 69, about half of
the attempts accepted; results/splits.md). Paper (abstract): OA 82.38 %, AA 80.35 %.

Model: 4x4x200 patches, bands 200 -> 100 -> 50 -> 24 -> 12 -> 6 -> 3 (band stride 2 in every
stage, valid band kernel 2 in stage 2); the spatial block as the official code runs it (no spatial
convolution, decision 2); 3,298,960 parameters + BN statistics. Full run: ~45-60 s per epoch on a
2-core CPU (results/).

Options after ':' -- model=da_imrn|ssan|arnn|acnn|rnn|cnn|knn|svm, protocol=blocks|pixels,
runlocal (same pipeline, shrunk for a CPU), ip_spatial=code|multiscale.
"""

from hsi_jax import config_util


def get_config(arg=None):
  options = config_util.parse_arg(arg, model="da_imrn", protocol="blocks", runlocal=False,
                                  ip_spatial="code")
  config = config_util.base_config("ip")
  config.split = config_util.split_config(
      options.protocol, block=6, patch=4, pixel_ratio=0.135, val_ratio=0.054, k_keep=9,
      accept=(1100, 1200))
  config_util.model_sections(config, model=options.model, runlocal=options.runlocal,
                             band_strides=(2, 2, 2, 2, 2, 2), valid_kernels=(1, 1, 2, 1, 1, 1))
  if options.model == "da_imrn":
    config.model.ip_spatial = options.ip_spatial  # decision 2: "code" (faithful) or "multiscale"
  return config
