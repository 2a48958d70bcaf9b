"""Focal loss of the DA-IMRN code (docs/decisions.md, "Loss")."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def focal_loss_sum(logits, labels, gamma: float = 2.0, alpha: float = 0.5, eps: float = 1e-9):
  """Summed focal loss. logits (..., C); labels (...) int, 1..C labelled, 0 = ignored.

  Per labelled pixel: alpha * (1 - q)^gamma * (-log q) with q = softmax(logits)[true] + eps
  (the code's max over one-hot classes is just the true-class term). Returns (loss sum, number of
  labelled pixels); the caller chooses the denominator.
  """
  probs = jax.nn.softmax(logits, axis=-1)
  labelled = labels > 0
  index = jnp.clip(labels - 1, 0, logits.shape[-1] - 1)
  q = jnp.take_along_axis(probs, index[..., None], axis=-1)[..., 0] + eps
  per_pixel = alpha * (1.0 - q) ** gamma * -jnp.log(q)
  return jnp.sum(jnp.where(labelled, per_pixel, 0.0)), jnp.sum(labelled)
