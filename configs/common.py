"""Sections shared by the scene configs: every value of an experiment that is not the scene's own.

A scene config (configs/ip.py, pu.py, sv.py, pc.py, ksc.py, bo.py, custom.py) sets the scene, its
partition and its DA-IMRN band schedule and calls these; everything else an experiment uses --
learning rates, optimiser moments, batch sizes, epochs, losses, widths, initial scales, input and
split settings -- is written here, once. Each value can be overridden on the command line
(--config.train.learning_rate=3e-4). The choices behind the values are in docs/decisions.md.
"""

from typing import Optional

import ml_collections
from ml_collections import config_dict

from hsi_jax import config_util, families
from hsi_jax.data import scenes, splits
from hsi_jax.models import da_imrn

DA_IMRN_STAGE_FEATURES = ((32, 64), (32, 64), (64, 128), (64, 128), (128, 256), (128, 256))
# A scene without calibrated `blocks` ratios: train and val each this share of the labelled pixels,
# near Indian Pines' 11-12 % (calibrated_split_config).
CALIBRATION_FRACTION = 0.11
# The multi-scale blocks' branch kernels (kh, kw, kb): the paper's, and the official code's on PU
# and SV (configs/ip.py sets IP's own spatial ones).
DA_IMRN_SPATIAL_KERNELS = ((3, 3, 1), (5, 5, 1), (7, 7, 1))
DA_IMRN_SPECTRAL_KERNELS = ((1, 1, 3), (1, 1, 5), (1, 1, 7))
# The comparison's rows (issue 25): a spectral baseline, SSAN, the zoo, DA-IMRN.
COMPARE_MODELS = ("svm", "ssan", "ssrn", "hybridsn", "dbda", "cnn3d", "da_imrn")


def base_config(scene: str) -> ml_collections.ConfigDict:
  """Sections every experiment has: scene, data root, partition and training seeds."""
  config = ml_collections.ConfigDict()
  config.scene = scene
  config.data = ml_collections.ConfigDict(dict(root=""))  # "" = HSI_DATA_DIR or the user cache
  config.partition = 1  # split seed: partition k = seed k (docs/decisions.md, "Partition seeds")
  config.seed = 0       # model initialisation and data order
  # Several runs in one program (hsi_jax/run.py): num_seeds model seeds over one partition
  # (seeds_over="init") or num_seeds partitions (seeds_over="partitions"); mesh_seeds devices on the
  # mesh's seeds axis (0 = as many as divide the device count, up to num_seeds).
  config.num_seeds = 1
  config.seeds_over = "init"
  config.mesh_seeds = 0
  # Where compiled programs are kept between processes (hsi_jax/compile_cache.py): "" = the user's
  # cache directory, "off", or a directory; $HSI_JAX_COMPILE_CACHE overrides it.
  config.compile_cache = ""
  # launch/compare.py's table: its rows (each a model= option of the scene config), protocols and
  # partitions (not what a run computes: workdir.EXECUTION_LEAVES).
  config.compare = ml_collections.ConfigDict(dict(
      models=COMPARE_MODELS, protocols=("pixels", "blocks"), partitions=(1, 2, 3, 4, 5)))
  return config


def da_imrn_sections(config, *, band_strides, valid_kernels, runlocal: bool,
                     spatial_kernels=DA_IMRN_SPATIAL_KERNELS) -> None:
  """Adds `model` and `train` for DA-IMRN with the official code's settings (docs/decisions.md:
  "DA-IMRN network", "Optimiser", "Inputs", "Validation metric", "Loss"). `runlocal` keeps the
  pipeline and shrinks it: a quarter of the widths and a few epochs, to check the whole run on a
  CPU in minutes."""
  config.model = ml_collections.ConfigDict(dict(
      name="da_imrn", stage_features=DA_IMRN_STAGE_FEATURES,
      # None (a custom scene's): models/da_imrn.py's band_schedule of the cube's band count, when
      # the network is built
      band_strides=config_dict.placeholder(tuple) if band_strides is None else band_strides,
      valid_kernels=config_dict.placeholder(tuple) if valid_kernels is None else valid_kernels,
      attention_hidden=512, width=1.0,
      use_scam=True, use_sam=True, interact=True,  # ablation switches
      spatial_kernels=spatial_kernels, spectral_kernels=DA_IMRN_SPECTRAL_KERNELS,
      multiscale=True,  # False: one branch (the smallest kernel) per multi-scale block
      # BatchNormalization's (decisions.md, "BatchNorm axis"): Keras' momentum, epsilon 1e-6 as
      # this model has always run
      bn_momentum=0.99, bn_epsilon=1e-6,
      # Keras' he_normal as later Keras 2 draws it; "he_normal_keras_2_0": as Keras 2.0 did (no
      # truncation correction, a band kernel's fan-in without its taps; decisions.md)
      initializer="he_normal",
      fast_conv=True,  # (k,k,1) / (1,1,k) convolutions in folded 2-D / 1-D form (same result)
  ))
  config.data.standardize = False  # faithful: raw digital numbers (decisions.md, "Inputs")
  config.train = ml_collections.ConfigDict(dict(
      optimizer="keras_nadam",  # Keras-2 Nadam with its momentum schedule; "nadam" = optax's
      # The code's Nadam(beta_1=0.9, beta_2=0.999, epsilon=1e-8) and Keras 2's schedule_decay
      # (decisions.md, "Optimiser": the epsilon is passed, not Keras' 1e-7 default).
      b1=0.9, b2=0.999, eps=1e-8, schedule_decay=0.004,
      batch_size=16, epochs=100, learning_rate=1e-3, lr_decay=0.1, lr_decay_every=20,
      patience=15, focal_gamma=2.0, focal_alpha=0.5,
      window_labels="block",        # each window trained on its own block's labels; "final_map"
      loss_reduction="all_pixels",  # faithful; "labelled": mean over labelled pixels only
      augment=True,                 # the partition's flipped copy of every kept window
      val_metric="labelled",        # labelled pixels; "keras_all_pixels" = the code's (decisions.md)
      eval_batch_size=256,
      checkpoint_every=1,           # epochs between `latest` checkpoints (resume points)
  ))
  if runlocal:
    config.model.width = 0.25
    config.data.standardize = True
    config.train.epochs = 10
    config.train.patience = 10
    config.train.lr_decay_every = 7


def ssan_sections(config, *, model: str, runlocal: bool) -> None:
  """Adds `model`, `train` and the input settings of SSAN and its comparison rows (ssan, arnn, acnn,
  rnn, cnn, knn, svm) with the SSAN code's settings (docs/decisions.md: "SSAN network",
  "SSAN under blocks", "GRU cell"). Initialisers are the standard ones, not the code's std-1 normal
  (decisions.md, "Initialisers"). `runlocal`
  shrinks the widths and the iteration budget to run in about a minute on a 2-core CPU."""
  config.model = ml_collections.ConfigDict(dict(
      name=model, gru_units=512, attention_size=32, conv_features=(32, 64), fc_units=1024,
      fusion_units=(256, 1024), dropout_rate=0.4,  # the code's keep-prob 0.6 on the spatial FC
      conv_kernel=5, pool_window=2,                # 5x5 SAME convolutions, 2x2 / 2 SAME max-pools
      gru_gate_bias_init=1.0,                      # TF-1 GRUCell's gate bias
      context_init_std=0.1,                        # band attention's u ~ N(0, 0.1^2), the code's
      mask_init_std=1e-4,                          # pixel mask weight: trunc-normal, the code's
      fast_conv=True,                              # 5x5 convolutions as im2col matmuls
      neighbours=(1, 3, 5, 7, 9),                  # knn: chosen on the validation pixels
      svm_c=(1.0, 10.0, 100.0, 1000.0), svm_gamma=("scale",),  # svm: grid, chosen on val
  ))
  config.data.neighbourhood = 27    # PCA patch side (zero padding at the border)
  config.data.pca_components = 4
  config.data.patch_bands = "pca"   # the patches' channels: principal components (data/pixel_inputs)
  config.data.patch_scaling = "minmax"  # each component to [0, 1]
  config.data.fit_stats = "train"   # min-max / PCA on training pixels; "scene" = the code (leaks)
  config.train = ml_collections.ConfigDict(dict(
      optimizer="adam", learning_rate=5e-3, batch_size=128,
      b1=0.9, b2=0.999, eps=1e-8,      # tf.train.AdamOptimizer's defaults (TF 1), as the code
      steps=10_000, eval_every=1_000,  # best-on-validation every 1,000 iterations
      patience=10,                     # in evaluation rounds: 10 = never stops early, as the code
      eval_batch_size=1024,
      checkpoint_every=1,              # rounds between `latest` checkpoints (resume points)
  ))
  if runlocal:
    config.model.update(gru_units=32, attention_size=16, conv_features=(8, 16), fc_units=128,
                        fusion_units=(32, 128))
    config.train.update(steps=600, eval_every=100, patience=6)


# The zoo (docs/models.md): each network's official recipe, section by section (docs/decisions.md,
# "SSRN", "HybridSN", "DBDA", "3-D CNN" for where each value comes from), and what `runlocal`
# shrinks (widths and epochs: an IP run in a few minutes on 2 CPU cores, the reduced rows of the
# comparison table; tests shorten them further).
ZOO = {
    "ssrn": dict(  # zilongzhong/SSRN (Keras 2.0): build_resnet_8, RMSprop, 200 epochs
        model=dict(filters=24, band_features=128, spectral_kernel=7, spectral_stride=2,
                   spatial_kernel=3,
                   spectral_blocks=1, spatial_blocks=1,  # the code's; the paper's figure: 2 and 2
                   dropout_rate=0.5, bn_momentum=0.99, bn_epsilon=1e-3),
        data=dict(neighbourhood=7, patch_bands="all", patch_scaling="standard"),
        train=dict(optimizer="rmsprop", learning_rate=3e-4, rho=0.9, eps=1e-8, batch_size=16,
                   epochs=200, patience=200,  # the code's EarlyStopping(patience=200): never
                   kernel_l2=1e-4),           # l2(1e-4) on every convolution kernel
        runlocal=dict(model=dict(filters=8, band_features=32), train=dict(epochs=20, patience=20))),
    "hybridsn": dict(  # gokriznastic/HybridSN notebook (Keras): Adam with decay, 100 epochs
        model=dict(conv3d_features=(8, 16, 32), conv3d_kernels=((3, 3, 7), (3, 3, 5), (3, 3, 3)),
                   conv2d_features=64, conv2d_kernel=3, dense_units=(256, 128), dropout_rate=0.4),
        data=dict(neighbourhood=25, pca_components=30, patch_bands="pca",
                  patch_scaling="standard"),  # PCA(whiten=True)
        train=dict(optimizer="adam", learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-7,
                   step_decay=1e-6, batch_size=256, epochs=100,
                   patience=100),  # no early stopping in the notebook
        runlocal=dict(model=dict(conv3d_features=(4, 8, 16), conv2d_features=16,
                                 dense_units=(64, 32)),
                      data=dict(neighbourhood=11, pca_components=15),
                      train=dict(epochs=20, patience=20))),
    "dbda": dict(  # lironui/Double-Branch-Dual-Attention (PyTorch): Adam, cosine, 200 epochs
        model=dict(first_features=24, growth=12, dense_layers=3, spectral_kernel=7,
                   spectral_stride=2, spatial_kernel=3, dropout_rate=0.5,
                   bn_momentum=0.9, bn_epsilon=1e-3),  # PyTorch's momentum 0.1 in Flax's terms
        data=dict(neighbourhood=9, patch_bands="all", patch_scaling="standard"),
        train=dict(optimizer="adam", learning_rate=5e-4, b1=0.9, b2=0.999, eps=1e-8,
                   batch_size=16, epochs=200,
                   patience=20,        # the code's early_num (on validation loss there)
                   cosine_period=15),  # CosineAnnealingLR(T_max=15), stepped with the epoch
        runlocal=dict(model=dict(first_features=8, growth=4), train=dict(epochs=8, patience=8))),
    "cnn3d": dict(  # nshaud/DeepHyperX HamidaEtAl: SGD, 100 epochs
        model=dict(),
        data=dict(neighbourhood=5, patch_bands="all", patch_scaling="cube_minmax"),
        train=dict(optimizer="sgd", learning_rate=0.01, weight_decay=5e-4, batch_size=100,
                   epochs=100, patience=100),  # its ReduceLROnPlateau: not here (decisions.md)
        runlocal=dict(train=dict(epochs=20, patience=20))),
}


def zoo_sections(config, *, model: str, runlocal: bool) -> None:
  """Adds `model`, `train` and the input settings of a network of the zoo (ZOO[model]): its
  official code's architecture, inputs and training recipe; best state on the validation pixels
  every epoch, as for every model here. `runlocal` shrinks it (ZOO[model]["runlocal"])."""
  recipe = ZOO[model]
  config.model = ml_collections.ConfigDict(dict(name=model, **recipe["model"], fast_conv=True))
  # pca_components 0: patches of every band (data.patch_bands="all") read no PCA
  config.data.update(dict(dict(pca_components=0, fit_stats="train"), **recipe["data"]))
  config.train = ml_collections.ConfigDict(dict(
      **recipe["train"],
      eval_batch_size=256,
      checkpoint_every=1,  # epochs between `latest` checkpoints (resume points)
  ))
  if runlocal:
    for section, values in recipe["runlocal"].items():
      config[section].update(values)


def model_sections(config, *, model: str, runlocal: bool, **da_imrn_settings) -> None:
  """The sections of the `model=` option: DA-IMRN (da_imrn_sections), a network of the zoo
  (zoo_sections) or SSAN, its rows, KNN and SVM (ssan_sections). Under the `pixels` protocol a
  pixel classifier's split windows are its neighbourhood patches, so the leakage audit measures
  what its inputs really read."""
  if model not in families.NAMES:
    raise config_util.ConfigError(f"Unknown model {model!r}; valid: {', '.join(families.NAMES)}.")
  if families.family_of(model) is families.windows:
    da_imrn_sections(config, runlocal=runlocal, **da_imrn_settings)
    return
  if model in ZOO:
    zoo_sections(config, model=model, runlocal=runlocal)
  else:
    ssan_sections(config, model=model, runlocal=runlocal)
  if config.split.protocol == "pixels":
    config.split.patch = config.data.neighbourhood


def split_config(protocol: str, *, block: int, patch: int, pixel_ratio: Optional[float],
                 val_ratio: Optional[float], k_keep: int,
                 accept: Optional[tuple[int, int]]) -> ml_collections.ConfigDict:
  """The `split` section: `blocks` parameters of the scene, and the SSAN `pixels` defaults.
  pixel_ratio / val_ratio / accept None: derived for the scene when the split is made, from a
  `calibration` section (calibrated_split_config)."""
  if protocol not in splits.PROTOCOLS:
    raise config_util.ConfigError(f"Unknown protocol {protocol!r}; valid: "
                                  f"{', '.join(splits.PROTOCOLS)}.")

  def given(value, kind):  # None: a typed placeholder, so --config.split.<leaf>= still parses
    return config_dict.placeholder(kind) if value is None else value

  return ml_collections.ConfigDict(dict(
      protocol=protocol,
      # blocks (DA-IMRN leakage-free partition)
      block=block, patch=patch, pixel_ratio=given(pixel_ratio, float),
      val_ratio=given(val_ratio, float), k_keep=k_keep, accept=given(accept, tuple),
      max_attempts=100,
      # pixels (SSAN: 100 train / 100 val / rest test per class); set per_class or fraction.
      per_class=config_dict.placeholder(int) if protocol == "blocks" else 100,
      fraction=config_dict.placeholder(float),
      val_per_class=100,
      # A file of the user's own train / test (/ val) maps (.npz or .mat, the ground truth's class
      # ids): the run uses exactly those sets instead of drawing a split (data/split_sources.py).
      file="",
      file_val_share=0.1,  # without a val map in the file: this share of each class's training
                           # pixels (drawn with the partition's seed) validates instead
      # A complete split.npz made elsewhere (our format; e.g. the DA-IMRN paper's partitions),
      # used exactly as given and checked on load; "{partition}" in the path is filled with the
      # partition, so seeds_over="partitions" runs several files in one program.
      npz="",
  ))


def calibrated_split_config(protocol: str, *, block: int, patch: int, k_keep: int,
                            fraction: float = CALIBRATION_FRACTION) -> ml_collections.ConfigDict:
  """The `split` section of a scene whose `blocks` ratios were never calibrated (a user's own, KSC,
  Botswana): the geometry given, pixel_ratio / val_ratio / accept left unset and derived from the
  scene's ground truth when the split is made (data/split_sources.py: calibrated_params), so they
  follow --config.split.block=... and the other geometry leaves; split.json records them."""
  config = split_config(protocol, block=block, patch=patch, pixel_ratio=None, val_ratio=None,
                        k_keep=k_keep, accept=None)
  config.calibration = ml_collections.ConfigDict(dict(
      fraction=fraction,          # train and val each this share of the labelled pixels
      tolerance=0.01,             # accept bounds: fraction -+ this share of the labelled pixels
      max_fraction=0.3,           # train and val together then leave at least 40 % to test
      start_ratios=(0.15, 0.06),  # (pixel_ratio, val_ratio) the search starts from: Indian Pines'
      rounds=4,                   # rescalings of both ratios by target / measured
      draws=4,                    # partitions drawn (seed 0) to measure each round
  ))
  return config


def registered_scene_config(scene: str, arg=None) -> ml_collections.ConfigDict:
  """A registered scene that no paper partitioned (KSC, Botswana): options model=, protocol=,
  runlocal; Indian Pines' geometry (6x6 blocks, 4x4 windows, k_keep 8) with ratios calibrated when
  the split is made (calibrated_split_config), and the DA-IMRN band schedule of the scene's
  registered band count (models/da_imrn.py: band_schedule)."""
  options = config_util.parse_arg(arg, model="da_imrn", protocol="blocks", runlocal=False)
  config = base_config(scene)
  config.split = calibrated_split_config(options.protocol, block=6, patch=4, k_keep=8)
  band_strides, valid_kernels = da_imrn.band_schedule(scenes.get_scene(scene).num_bands)
  model_sections(config, model=options.model, runlocal=options.runlocal,
                 band_strides=band_strides, valid_kernels=valid_kernels)
  return config
