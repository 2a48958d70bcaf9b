"""Pictures a paper can use: the split over the scene, class maps next to the ground truth."""

from __future__ import annotations

import os

import numpy as np

from hsi_jax import fileutil


def _pyplot():
  """matplotlib (headless), imported when a picture is drawn: seconds of every launcher's
  start-up if imported with this module. Returns (pyplot, colors, patches)."""
  import matplotlib  # noqa: PLC0415  (see the docstring)
  matplotlib.use("Agg")
  import matplotlib.colors  # noqa: PLC0415
  import matplotlib.patches  # noqa: PLC0415
  import matplotlib.pyplot  # noqa: PLC0415
  return matplotlib.pyplot, matplotlib.colors, matplotlib.patches


SET_COLOURS = {"labelled, in no set": "#f2f2f2", "train": "#d62728", "leaked": "#ff9f1c",
               "val": "#1f77b4", "test": "#2ca02c"}


def _save(fig, path: os.PathLike) -> None:
  plt, mcolors, mpatches = _pyplot()
  with fileutil.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=150, bbox_inches="tight", format="png")
  plt.close(fig)


def plot_split(path: os.PathLike, maps: dict[str, np.ndarray], gt: np.ndarray, title: str) -> None:
  """Two panels: ground truth classes, and which set each labelled pixel belongs to."""
  plt, mcolors, mpatches = _pyplot()
  sets = np.zeros(gt.shape, np.int32)
  for index, name in enumerate(("train", "leaked", "val", "test"), start=1):
    sets[maps[name] > 0] = index
  height, width = gt.shape
  fig, axes = plt.subplots(1, 2, figsize=(2 * 4 * width / max(height, width) + 2,
                                          4 * height / max(height, width) + 1))
  axes[0].imshow(class_image(gt))
  axes[0].set_title("ground truth")
  axes[1].imshow(sets, cmap=mcolors.ListedColormap(list(SET_COLOURS.values())),
                 vmin=-0.5, vmax=4.5, interpolation="nearest")
  counts = [int((gt > 0).sum() - (sets > 0).sum())] + [int((sets == i).sum()) for i in range(1, 5)]
  axes[1].legend(handles=[mpatches.Patch(color=colour, label=f"{name} ({n})") for
                          (name, colour), n in zip(SET_COLOURS.items(), counts)],
                 loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7)
  axes[1].set_title(title, fontsize=9)
  for ax in axes:
    ax.set_axis_off()
  _save(fig, path)


def class_image(labels: np.ndarray, num_classes: int | None = None) -> np.ndarray:
  """(H, W, 3) float RGB of class ids; 0 (unlabelled) is black."""
  plt, mcolors, mpatches = _pyplot()
  num_classes = num_classes or max(int(labels.max()), 1)
  palette = plt.get_cmap("tab20" if num_classes <= 20 else "gist_ncar")(
      np.linspace(0, 1, 20 if num_classes <= 20 else num_classes))[:, :3]
  colours = np.concatenate([np.zeros((1, 3)), palette[:num_classes]])
  return colours[np.clip(labels, 0, num_classes)]


def plot_map(path: os.PathLike, prediction: np.ndarray, gt: np.ndarray, title: str) -> None:
  """Predicted classes for every pixel next to the ground truth."""
  plt, mcolors, mpatches = _pyplot()
  num_classes = int(max(prediction.max(), gt.max(), 1))
  height, width = gt.shape
  fig, axes = plt.subplots(1, 2, figsize=(2 * 4 * width / max(height, width) + 0.5,
                                          4 * height / max(height, width) + 0.8))
  axes[0].imshow(class_image(gt, num_classes), interpolation="nearest")
  axes[0].set_title("ground truth")
  axes[1].imshow(class_image(prediction, num_classes), interpolation="nearest")
  axes[1].set_title(title, fontsize=9)
  for ax in axes:
    ax.set_axis_off()
  _save(fig, path)


def plot_class_map(path: os.PathLike, classes: np.ndarray, class_names, title: str) -> None:
  """A class map alone (a scene without ground truth), with a legend of the classes and their
  pixel counts; 0 (no data) is black."""
  plt, mcolors, mpatches = _pyplot()
  num_classes = len(class_names)
  height, width = classes.shape
  fig, ax = plt.subplots(figsize=(6 * width / max(height, width) + 2.5,
                                  6 * height / max(height, width) + 0.6))
  ax.imshow(class_image(classes, num_classes), interpolation="nearest")
  colours = class_image(np.arange(num_classes + 1), num_classes)
  counts = np.bincount(classes.ravel(), minlength=num_classes + 1)[1:]
  ax.legend(handles=[mpatches.Patch(color=colours[c + 1], label=f"{c + 1} {name} ({n})")
                     for c, (name, n) in enumerate(zip(class_names, counts))],
            loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7)
  ax.set_title(title, fontsize=9)
  ax.set_axis_off()
  _save(fig, path)


def plot_curves(path: os.PathLike, records: list[dict], title: str,
                lr_drop_rounds: tuple[int, ...] = (), round_name: str = "epoch") -> None:
  """Training loss (log scale) and validation accuracy per round (an epoch for DA-IMRN) from
  metrics.jsonl records ({"round", "loss", "val_accuracy"}); dashed lines where the learning rate
  drops (the first round run at the new rate)."""
  plt, mcolors, mpatches = _pyplot()
  epochs = np.array([r["round"] + 1 for r in records])
  loss = np.array([r["loss"] for r in records], np.float64)
  val = np.array([r["val_accuracy"] for r in records], np.float64)
  fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(9, 3.2), gridspec_kw=dict(wspace=0.35))
  ax_loss.plot(epochs, loss, color="#d62728", lw=1.2)
  if len(loss) and np.all(loss > 0):
    ax_loss.set_yscale("log")
  ax_loss.set_ylabel("training loss")
  ax_val.plot(epochs, val, color="#1f77b4", lw=1.2)
  if len(val):
    best = int(np.argmax(val))
    ax_val.plot(epochs[best], val[best], "o", color="#1f77b4")
    ax_val.annotate(f"best {val[best]:.4f} @ {epochs[best]}", (epochs[best], val[best]),
                    textcoords="offset points", xytext=(4, -12), fontsize=7)
  ax_val.set_ylabel("validation accuracy")
  for ax in (ax_loss, ax_val):
    ax.set_xlabel(round_name)
    for drop in lr_drop_rounds:
      if len(epochs) and drop <= epochs[-1]:
        ax.axvline(drop + 0.5, color="grey", ls="--", lw=0.8)
    ax.grid(alpha=0.3)
  fig.suptitle(title + ("  (dashed: learning-rate drop)" if lr_drop_rounds else ""), fontsize=9)
  _save(fig, path)


def plot_scene(path: os.PathLike, cube: np.ndarray, gt: np.ndarray, rgb_bands, class_names,
               title: str) -> None:
  """An RGB composite of the cube (bands `rgb_bands`, each stretched between its 2nd and 98th
  percentile) beside the ground truth, with a legend of the classes and their pixel counts."""
  plt, mcolors, mpatches = _pyplot()
  rgb = cube[..., list(rgb_bands)].astype(np.float64)
  low, high = np.percentile(rgb, 2, axis=(0, 1)), np.percentile(rgb, 98, axis=(0, 1))
  rgb = np.clip((rgb - low) / np.maximum(high - low, 1e-12), 0, 1)
  height, width = gt.shape
  fig, axes = plt.subplots(1, 2, figsize=(2 * 4 * width / max(height, width) + 3,
                                          4 * height / max(height, width) + 1))
  axes[0].imshow(rgb)
  axes[0].set_title(f"bands {', '.join(map(str, rgb_bands))} as R, G, B", fontsize=9)
  colours = class_image(np.arange(len(class_names) + 1), len(class_names))
  axes[1].imshow(class_image(gt, len(class_names)), interpolation="nearest")
  counts = np.bincount(gt.ravel(), minlength=len(class_names) + 1)[1:]
  axes[1].legend(handles=[mpatches.Patch(color=colours[c + 1], label=f"{c + 1} {name} ({n})")
                          for c, (name, n) in enumerate(zip(class_names, counts))],
                 loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7)
  axes[1].set_title("ground truth", fontsize=9)
  fig.suptitle(title, fontsize=9)
  for ax in axes:
    ax.set_axis_off()
  _save(fig, path)
