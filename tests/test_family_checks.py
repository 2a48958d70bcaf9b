"""Each family's check(config, splits, mesh) runs before the work directory is touched."""

import subprocess
import sys

import pytest

from conftest import REPO, subprocess_env


def _train(workdir, *overrides):
  return subprocess.run(
      [sys.executable, "launch/train.py", "--config=configs/ip.py:runlocal,model=rnn",
       "--config.train.steps=4", "--config.train.eval_every=2", f"--workdir={workdir}",
       *overrides], cwd=REPO, capture_output=True, text=True, timeout=900,
      env=subprocess_env(devices=2))


@pytest.mark.slow
def test_a_batch_the_devices_cannot_split_leaves_the_workdir_untouched(tmp_path):
  """A pixel model's batch of 3 over 2 devices is refused in one line (exit 2) before anything
  is written; the corrected command, same workdir, then runs."""
  workdir = tmp_path / "run"
  refused = _train(workdir, "--config.train.batch_size=3")
  assert refused.returncode == 2, refused.stderr[-2000:]
  assert refused.stderr.strip().splitlines()[-1] == (
      "error: train.batch_size=3 must be a multiple of the 2 devices each batch is split over; "
      "use --config.train.batch_size=4, or --config.mesh_seeds to put more devices on seeds.")
  assert not workdir.exists()
  corrected = _train(workdir, "--config.train.batch_size=4")
  assert corrected.returncode == 0, corrected.stderr[-2000:]
  assert (workdir / "results.json").is_file()
