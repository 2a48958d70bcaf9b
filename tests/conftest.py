"""Shared fixtures: the real ground-truth maps (bundled in the package, identical to ../shared/data)."""

import os
import pathlib

import jax
import pytest

from hsi_jax.data import io

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Equality tests compare two forms of the same arithmetic in float32. On NVIDIA GPUs JAX's default
# precision multiplies float32 matrices and convolutions in TF32 (10-bit mantissa), which puts 1e-3
# relative differences between forms that agree to 1e-6 in full float32; the tests ask for it.
jax.config.update("jax_default_matmul_precision", "highest")


def subprocess_env(devices=None, **extra) -> dict:
  """Environment for a launcher run in a subprocess: the repository on PYTHONPATH (kept in front of
  whatever is there already). devices=N runs it on N fake CPU devices (on CPU even where an
  accelerator is present, since the flag only multiplies the host platform)."""
  env = dict(os.environ, **extra)
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
  env["JAX_DEFAULT_MATMUL_PRECISION"] = "highest"
  if devices is not None:
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  return env


@pytest.fixture(scope="session")
def ground_truths():
  return {name: io.load_ground_truth(name) for name in ("ip", "pu", "sv")}


@pytest.fixture(scope="session")
def indian_pines():
  return io.load_scene("ip")
