"""Shared fixtures: the real ground-truth maps (bundled in the package, identical to ../shared/data)."""

import os
import pathlib
import shutil
import socket
import tempfile

import jax
import numpy as np
import pytest
import scipy.io

from hsi_jax import compile_cache
from hsi_jax.data import io

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Equality tests compare two forms of the same arithmetic in float32. On NVIDIA GPUs JAX's default
# precision multiplies float32 matrices and convolutions in TF32 (10-bit mantissa), which puts 1e-3
# relative differences between forms that agree to 1e-6 in full float32; the tests ask for it.
jax.config.update("jax_default_matmul_precision", "highest")


def pytest_configure(config):
  """One compilation cache for the whole test session, its processes and launchers included (a
  program the suite compiles twice is loaded the second time), never the user's own cache; kept
  where the environment already names one."""
  del config
  if compile_cache.ENV not in os.environ:
    os.environ[compile_cache.ENV] = tempfile.mkdtemp(prefix="hsi_jax_compile_")
    _SESSION_CACHE.append(os.environ[compile_cache.ENV])


def pytest_collection_modifyitems(config, items):
  """The whole-run (`slow`) tests first: under pytest-xdist (README's command) the long tests are
  handed out before the short ones, which then fill the workers' ends evenly."""
  del config
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_unconfigure(config):
  del config
  for path in _SESSION_CACHE:
    shutil.rmtree(path, ignore_errors=True)


_SESSION_CACHE = []


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


def free_port() -> int:
  """A TCP port that is free now: the OS picks one for a socket bound to port 0, which is closed
  again (a fixed port fails when another run on the machine holds it)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.bind(("localhost", 0))
    return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ground_truths():
  return {name: io.load_ground_truth(name) for name in ("ip", "pu", "sv")}


@pytest.fixture(scope="session")
def indian_pines():
  return io.load_scene("ip")


def write_custom_scene(folder: pathlib.Path, shape=(47, 53), bands=24, class_ids=(3, 7, 20, 41),
                       seed=0) -> dict:
  """A small scene of a user's own in `folder`: an odd size, an int16 cube with negative values,
  sparse class ids in four quadrants (15 % of their pixels unlabelled), class spectra a few
  noise levels apart. Returns the paths and arrays."""
  rng = np.random.default_rng(seed)
  height, width = shape
  gt = np.zeros(shape, np.uint8)
  rows = (slice(2, height // 2 - 1), slice(height // 2 + 1, height - 2))
  cols = (slice(2, width // 2 - 1), slice(width // 2 + 1, width - 2))
  for index, class_id in enumerate(class_ids):
    gt[rows[index // 2 % 2], cols[index % 2]] = class_id
  gt[rng.random(shape) < 0.15] = 0
  cube = rng.normal(0, 120, shape + (bands,))
  for class_id in class_ids:
    cube[gt == class_id] += rng.normal(0, 150, bands)
  folder.mkdir(parents=True, exist_ok=True)
  paths = dict(cube=folder / "cube.mat", gt=folder / "gt.mat")
  scipy.io.savemat(paths["cube"], {"radiance": cube.astype(np.int16)})
  scipy.io.savemat(paths["gt"], {"labels": gt})
  return dict(paths, cube_array=cube.astype(np.int16), gt_array=gt)
