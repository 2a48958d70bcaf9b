"""validate(config): every value a run reads, checked before anything is written or trained.

One ConfigError lists every problem found, each with the leaf's path, what it holds and what it
must be. run.run calls it first; the launchers call it as soon as the flags are parsed.
"""

from __future__ import annotations

import numbers
import pathlib

import jax

from hsi_jax import families, models, seeds
from hsi_jax.config_util import ConfigError
from hsi_jax.data import pixel_inputs, scenes, split_sources, splits
from hsi_jax.families import windows
from hsi_jax.models import layers
from hsi_jax.train import optim, step


def _leaf(config, path: str):
  node = config
  for part in path.split("."):
    node = node[part]
  return node


def _flat(value):
  """The scalars of a nested tuple (a scalar: itself)."""
  if isinstance(value, (list, tuple)):
    return [x for v in value for x in _flat(v)]
  return [value]


def validate(config) -> None:
  """Raises ConfigError naming every bad value of `config` (see the module docstring)."""
  problems = []

  def has(path):
    try:
      _leaf(config, path)
      return True
    except (KeyError, AttributeError):
      return False

  def check(path, ok, must):
    if not has(path):
      problems.append(f"{path} is missing")
      return
    value = _leaf(config, path)
    try:
      good = ok(value)
    except TypeError:
      good = False
    if not good:
      problems.append(f"{path}={value!r} must be {must}")

  def integer(low):
    return (lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= low,
            f"an integer >= {low}")

  def one_of(values):
    return (lambda v: v in values, f"one of {', '.join(map(repr, values))}")

  def real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)

  positive = (lambda v: real(v) and v > 0, "a number > 0")
  non_negative = (lambda v: real(v) and v >= 0, "a number >= 0")
  fraction = (lambda v: real(v) and 0 < v < 1, "a fraction in (0, 1)")
  closed_fraction = (lambda v: real(v) and 0 <= v <= 1, "a number in [0, 1]")
  boolean = (lambda v: isinstance(v, bool), "True or False")
  counts = (lambda v: len(v) > 0 and all(integer(1)[0](x) for x in v),
            "a non-empty list of integers >= 1")

  check("scene", *one_of(tuple(scenes.SCENES) + (scenes.CUSTOM,)))
  check("data.root", lambda v: isinstance(v, str), "a folder path, or '' for the default")
  check("compile_cache", lambda v: isinstance(v, str),
        "a directory, 'off', or '' for the user's cache directory")
  if has("scene") and config.scene == scenes.CUSTOM:
    for leaf in ("cube", "gt"):
      check(f"data.{leaf}", lambda v: isinstance(v, str) and v, "the path of the scene's file")
    for leaf in ("cube_key", "gt_key", "classes"):
      check(f"data.{leaf}", lambda v: isinstance(v, str), "a string ('' for the default)")
  check("split.file_val_share", *fraction)
  if has("split.file") and config.split.file:
    if not pathlib.Path(config.split.file).expanduser().is_file():
      problems.append(f"split.file={config.split.file!r} is not a file")
    if has("seeds_over") and config.seeds_over == "partitions" and config.num_seeds > 1:
      problems.append("seeds_over='partitions' draws several partitions, but split.file fixes "
                      "the split: use seeds_over='init' (model seeds) with a split file")
  if has("split.npz") and config.split.npz:
    if has("split.file") and config.split.file:
      problems.append("split.npz and split.file both give the split: set one of them")
    many = has("seeds_over") and config.seeds_over == "partitions" and config.num_seeds > 1
    if many and "{partition}" not in config.split.npz:
      problems.append("seeds_over='partitions' runs several partitions, but split.npz names one "
                      "file: put {partition} in the path (.../IP_{partition}/split.npz)")
    partitions = range(config.partition, config.partition + (config.num_seeds if many else 1))
    for partition in partitions:
      path = split_sources.npz_path(config.split.npz, partition)
      if not path.is_file():
        problems.append(f"split.npz={config.split.npz!r}: no file at {path} (partition "
                        f"{partition})")
        break
  check("partition", *integer(0))
  check("seed", *integer(0))
  check("num_seeds", *integer(1))
  check("seeds_over", *one_of(seeds.SEEDS_OVER))
  check("mesh_seeds", *integer(0))
  if not problems and config.mesh_seeds and jax.device_count() % config.mesh_seeds:
    problems.append(f"mesh_seeds={config.mesh_seeds} must divide the device count "
                    f"({jax.device_count()}); 0 chooses it")
  check("split.protocol", *one_of(splits.PROTOCOLS))
  check("split.patch", *integer(1))
  if has("split.protocol") and config.split.protocol == "blocks":
    check("split.block", *integer(1))
    check("split.k_keep", *integer(1))
    check("split.max_attempts", *integer(1))
    # Left None under a split.calibration section: derived for the scene when the split is made.
    calibrated = has("split.calibration")
    ratios = [config.split.get(leaf) for leaf in ("pixel_ratio", "val_ratio")]
    if calibrated and (ratios[0] is None) != (ratios[1] is None):
      problems.append("split.pixel_ratio and split.val_ratio are calibrated together: set both, "
                      "or neither")
    for leaf, value in zip(("pixel_ratio", "val_ratio"), ratios):
      if not (calibrated and value is None):
        check(f"split.{leaf}", *fraction)
    if not (calibrated and config.split.get("accept") is None):
      check("split.accept", lambda v: len(v) == 2 and 0 <= v[0] <= v[1],
            "(low, high) with low <= high")
    if calibrated:
      check("split.calibration.tolerance", *fraction)
      check("split.calibration.max_fraction", *fraction)
      tolerance, most = config.split.calibration.get("tolerance"), config.split.calibration.get(
          "max_fraction")
      check("split.calibration.fraction", lambda v: real(v) and tolerance < v <= most,
            f"in (split.calibration.tolerance, split.calibration.max_fraction] = ({tolerance}, "
            f"{most}]")
      check("split.calibration.start_ratios", lambda v: len(v) == 2 and all(
          fraction[0](x) for x in v), "(pixel_ratio, val_ratio), each a fraction in (0, 1)")
      check("split.calibration.rounds", *integer(1))
      check("split.calibration.draws", *integer(1))
  for leaf, rule in (("per_class", integer(1)), ("fraction", fraction)):
    if has(f"split.{leaf}") and config.split[leaf] is not None:  # checked under any protocol
      check(f"split.{leaf}", *rule)
  if has("split.protocol") and config.split.protocol == "pixels":
    check("split.val_per_class", *integer(1))  # the pixel models and KNN / SVM choose on them
    if has("split.per_class") and has("split.fraction") and (config.split.per_class is None) == (
        config.split.fraction is None):
      problems.append("split: set exactly one of split.per_class and split.fraction")
  if has("compare"):  # launch/compare.py's table
    check("compare.models", lambda v: len(v) > 0 and all(m in families.NAMES for m in v),
          f"a non-empty list of model names ({', '.join(families.NAMES)})")
    check("compare.protocols", lambda v: len(v) > 0 and all(p in splits.PROTOCOLS for p in v),
          f"a non-empty list of protocols ({', '.join(splits.PROTOCOLS)})")
    check("compare.partitions", lambda v: len(v) > 0 and all(integer(0)[0](k) for k in v),
          "a non-empty list of partitions, integers >= 0")
  check("model.name", *one_of(families.NAMES))
  if not has("model.name") or config.model.name not in families.NAMES:
    raise ConfigError("Bad config: " + "; ".join(problems) + ".")  # the rest is per family

  family = families.family_of(config.model.name)
  if family is not families.classical:
    check("train.optimizer", *one_of(optim.OPTIMIZERS))
    if has("train.optimizer") and config.train.optimizer == "rmsprop":
      check("train.rho", lambda v: real(v) and 0 <= v < 1, "a decay rate in [0, 1)")
      check("train.eps", *positive)
    elif has("train.optimizer") and config.train.optimizer != "sgd":  # the moment-based ones
      for leaf in ("b1", "b2"):
        check(f"train.{leaf}", lambda v: real(v) and 0 <= v < 1, "a decay rate in [0, 1)")
      check("train.eps", *positive)
    for leaf in ("weight_decay", "step_decay", "kernel_l2"):  # optional leaves
      if has(f"train.{leaf}"):
        check(f"train.{leaf}", *non_negative)
    if has("train.cosine_period"):
      check("train.cosine_period", *integer(1))
    if has("train.optimizer") and config.train.optimizer == "keras_nadam":
      check("train.schedule_decay", *non_negative)
    check("train.learning_rate", *positive)
    check("train.batch_size", *integer(1))
    check("train.eval_batch_size", *integer(1))
    check("train.patience", *integer(1))
    check("train.checkpoint_every", *integer(1))
  if family is families.windows:
    check("train.epochs", *integer(1))
    check("train.lr_decay", *positive)
    check("train.lr_decay_every", *integer(1))
    check("train.window_labels", *one_of(windows.WINDOW_LABEL_RULES))
    check("train.loss_reduction", *one_of(step.LOSS_REDUCTIONS))
    check("train.val_metric", *one_of(step.VAL_METRICS))
    check("train.focal_gamma", *non_negative)
    check("train.focal_alpha", *closed_fraction)
    check("train.augment", *boolean)
    check("data.standardize", *boolean)
    check("model.width", *positive)
    check("model.attention_hidden", *integer(1))
    schedule = [config.model.get(leaf) for leaf in ("band_strides", "valid_kernels")]
    if schedule != [None, None]:  # both None: derived from the cube's band count
      stages = len(config.model.get("stage_features") or ())
      for leaf in ("band_strides", "valid_kernels"):
        check(f"model.{leaf}", lambda v: v is not None and len(v) == stages and counts[0](v),
              f"{stages} integers >= 1 (one a stage), or both band_strides and valid_kernels "
              "None (derived from the band count)")
    for switch in ("use_scam", "use_sam", "interact", "multiscale", "fast_conv"):
      check(f"model.{switch}", *boolean)
    for leaf in ("spatial_kernels", "spectral_kernels"):
      check(f"model.{leaf}", lambda v: len(v) > 0 and all(
          len(k) == 3 and all(integer(1)[0](side) for side in k) for k in v),
          "a non-empty list of (kh, kw, kb) kernel sides, integers >= 1")
    check("model.bn_momentum", lambda v: real(v) and 0 <= v < 1, "a rate in [0, 1)")
    check("model.bn_epsilon", *positive)
    check("model.initializer", *one_of(layers.INITS))
  else:
    check("data.fit_stats", *one_of(pixel_inputs.FIT_STATS))
  if family is families.classical:
    check("model.neighbours", *counts)
    check("model.svm_c", lambda v: len(v) > 0 and all(positive[0](x) for x in v),
          "a non-empty list of numbers > 0")
  if family is families.pixels and config.model.name in models.ZOO:
    for leaf in config.model:  # widths, kernels, strides, block counts: integers >= 1
      if leaf in ("dropout_rate", "bn_momentum"):
        check(f"model.{leaf}", lambda v: real(v) and 0 <= v < 1, "a rate in [0, 1)")
      elif leaf == "bn_epsilon":
        check(f"model.{leaf}", *positive)
      elif leaf == "fast_conv":
        check(f"model.{leaf}", *boolean)
      elif leaf != "name":
        check(f"model.{leaf}", lambda v: all(integer(1)[0](x) for x in _flat(v)),
              "integers >= 1")
  if family is families.pixels and config.model.name not in models.ZOO:
    check("model.gru_units", *integer(1))
    check("model.attention_size", *integer(1))
    check("model.conv_features", *counts)
    check("model.fc_units", *integer(1))
    check("model.fusion_units", *counts)
    check("model.fast_conv", *boolean)
    check("model.dropout_rate", lambda v: real(v) and 0 <= v < 1, "a rate in [0, 1)")
    check("model.conv_kernel", *integer(1))
    check("model.pool_window", *integer(1))
    check("model.gru_gate_bias_init", lambda v: real(v) and abs(v) < float("inf"), "a number")
    check("model.context_init_std", *positive)
    check("model.mask_init_std", *positive)
    check("train.steps", *integer(1))
    check("train.eval_every", *integer(1))
    steps_ok = not any(p.startswith(("train.steps", "train.eval_every")) for p in problems)
    if steps_ok and config.train.steps % config.train.eval_every:
      problems.append(f"train.steps={config.train.steps} must be a multiple of "
                      f"train.eval_every={config.train.eval_every}")
  if family is families.pixels:
    check("data.neighbourhood", *integer(1))
    check("data.patch_bands", *one_of(pixel_inputs.PATCH_BANDS))
    check("data.patch_scaling", *one_of(pixel_inputs.PATCH_SCALINGS))
    if has("data.patch_bands") and config.data.patch_bands == "pca":
      check("data.pca_components", *integer(1))
    if has("train.epochs"):  # zoo networks train in epochs (families/pixels.py: round_steps)
      check("train.epochs", *integer(1))
  if problems:
    raise ConfigError("Bad config: " + "; ".join(problems) + ".")
