"""Shared fixtures: the real ground-truth maps (bundled in the package, identical to ../shared/data)."""

import pathlib

import pytest

from hsi_jax.data import io

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def ground_truths():
  return {name: io.load_ground_truth(name) for name in ("ip", "pu", "sv")}


@pytest.fixture(scope="session")
def indian_pines():
  return io.load_scene("ip")
