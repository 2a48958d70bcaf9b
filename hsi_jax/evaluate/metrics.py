"""Confusion matrix (jitted, exact integer counts) and OA / AA / kappa from it."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np


@partial(jax.jit, static_argnums=2)
def confusion_matrix(true, pred, num_classes: int):
  """(C, C) int32 counts, rows = true class, cols = predicted; ids 1..C, pixels with true 0 skipped."""
  valid = (true > 0) & (true <= num_classes) & (pred > 0) & (pred <= num_classes)
  index = jnp.where(valid, (true - 1) * num_classes + (pred - 1), num_classes * num_classes)
  counts = jnp.bincount(index.ravel(), length=num_classes * num_classes + 1)
  return counts[:-1].reshape(num_classes, num_classes).astype(jnp.int32)


SUMMARY_KEYS = ("oa", "aa", "kappa")  # what a table of runs reports, mean +- std


def summarize(confusion: np.ndarray) -> dict:
  """OA, AA (mean recall over classes with test pixels), the official code's AA (`aa_code`:
  correct_c / (N_c + 1) over all classes; docs/decisions.md, "Average accuracy"), Cohen's kappa,
  per-class recall."""
  confusion = np.asarray(confusion, np.float64)
  total = confusion.sum()
  per_class_total = confusion.sum(axis=1)
  correct = np.diag(confusion)
  present = per_class_total > 0
  per_class = np.where(present, correct / np.maximum(per_class_total, 1), np.nan)
  oa = correct.sum() / total
  expected = (per_class_total * confusion.sum(axis=0)).sum() / total ** 2
  return dict(
      oa=float(oa),
      aa=float(np.nanmean(per_class)),
      aa_code=float(np.mean(correct / (per_class_total + 1))),
      kappa=float((oa - expected) / (1 - expected)) if expected < 1 else 1.0,
      per_class_accuracy=[None if np.isnan(a) else float(a) for a in per_class],
      confusion_matrix=confusion.astype(int).tolist(),
      num_test_pixels=int(total),
  )


def collapse_warnings(true: np.ndarray, pred: np.ndarray) -> list[str]:
  """A warning when the predictions at labelled pixels are all one class while the labels are
  not: the model learned nothing (a learning rate too high, inputs without standardisation...)."""
  true, pred = np.asarray(true), np.asarray(pred)
  classes = np.unique(pred)
  if len(classes) == 1 and len(np.unique(true)) > 1:
    return [f"the predictions collapsed to one class: class {classes[0]} for all {len(pred)} test "
            "pixels. Training failed; check train.learning_rate and the inputs (e.g. "
            "config.data.standardize=True)."]
  return []
