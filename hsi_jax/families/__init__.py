"""Model families behind one registry: {model name -> (builder, family)}.

A family turns (config, scene, splits) into what the run loop (hsi_jax/run.py) drives:
- windows (DA-IMRN): every pixel of p x p windows; a round is an epoch;
- pixels (SSAN and its rows): centre-pixel classification; a round is train.eval_every steps;
- classical (KNN, SVM): scikit-learn fitted on the host, no rounds.
The neural families expose `make_program(config, scene, splits, mesh, on_step) -> Program`
(families/program.py); the classical one `fit_predict(config, scene, split)`.
"""

from __future__ import annotations

from hsi_jax import models
from hsi_jax.families import classical, pixels, windows
from hsi_jax.models import ssan

REGISTRY = {
    "da_imrn": (models.build_da_imrn, windows),
    **{name: (models.build_ssan, pixels) for name in ssan.VARIANTS},
    "knn": (classical.candidates, classical),
    "svm": (classical.candidates, classical),
}
NAMES = tuple(REGISTRY)


def family_of(model_name: str):
  """The family module that trains `model_name`."""
  if model_name not in REGISTRY:
    raise ValueError(f"Unknown model {model_name!r}; valid: {', '.join(NAMES)}.")
  return REGISTRY[model_name][1]


def is_neural(model_name: str) -> bool:
  return family_of(model_name) is not classical
