"""Model families behind one registry: {model name -> family}.

A family turns (config, scene, splits) into what the run loop (hsi_jax/loop.py) drives:
- windows (DA-IMRN): every pixel of p x p windows; a round is an epoch;
- pixels (SSAN and its rows, the zoo's SSRN, HybridSN, DBDA, 3-D CNN): centre-pixel
  classification of a neighbourhood patch; a round is train.eval_every steps, or an epoch;
- classical (KNN, SVM): scikit-learn fitted on the host; one round, the fit.
Each family module has the same interface: `make_mesh(config, num_seeds)`, `check(config, splits,
mesh)` (a UserError before anything is written), `make_program(config, scene, splits,
mesh) -> Program` (families/program.py) and `WINDOWED` (whether its inputs are the split's
windows). The network of a model name is built by models.build_model.
"""

from __future__ import annotations

from hsi_jax.families import classical, pixels, windows
from hsi_jax import models
from hsi_jax.models import ssan

REGISTRY = {
    "da_imrn": windows,
    **{name: pixels for name in ssan.VARIANTS},
    **{name: pixels for name in models.ZOO},
    "knn": classical,
    "svm": classical,
}
NAMES = tuple(REGISTRY)


def family_of(model_name: str):
  """The family module that trains `model_name`."""
  if model_name not in REGISTRY:
    raise ValueError(f"Unknown model {model_name!r}; valid: {', '.join(NAMES)}.")
  return REGISTRY[model_name]


def is_neural(model_name: str) -> bool:
  return family_of(model_name) is not classical
