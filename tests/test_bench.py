"""launch/bench.py's epoch mode: one real round of the run's program on Indian Pines."""

import math

import pytest

from hsi_jax import benchmark, config_util
from hsi_jax.data import split_files

from conftest import REPO


@pytest.mark.slow
def test_epoch_mode_times_the_runs_epoch_and_validation(indian_pines):
  config = config_util.load_config(str(REPO / "configs" / "ip.py") + ":runlocal")
  config.model.width = 0.125
  figures = benchmark.benchmark_epoch(config, rounds=1)
  split, _, _ = split_files.split_from_config(config, labels=indian_pines)
  # The epoch trains every kept window and its flipped copy, in whole batches; validation scores
  # the partition's validation windows.
  batch = config.train.batch_size
  assert figures["train_examples"] == math.ceil(2 * len(split.train_windows) / batch) * batch
  assert figures["val_windows"] == len(split.val_windows)
  assert figures["train_s"] > 0 and figures["val_s"] > 0
  assert figures["round_s"] == pytest.approx(figures["train_s"] + figures["val_s"], abs=0.011)
  assert figures["train_patches_per_s"] == pytest.approx(
      figures["train_examples"] / figures["train_s"], rel=0.01)


def test_profile_mode_lists_the_steps_ops_with_their_model_code():
  """Op by op: a real trace of the step loop read back; every listed op is one of the compiled
  program's, the network's own matmuls are among them, the kinds add up to the listed total."""
  config = config_util.load_config(str(REPO / "configs" / "ip.py") + ":runlocal")
  config.model.width = 0.125
  figures = benchmark.profile_step(config, loop_steps=2, top=10)
  assert figures["wall_ms_per_step"] > 0 and len(figures["top_ops"]) == 10
  times = [op["ms_per_step"] for op in figures["top_ops"]]
  assert times == sorted(times, reverse=True) and times[-1] > 0
  assert sum(figures["by_kind"].values()) == pytest.approx(figures["op_ms_per_step"], rel=0.01)
  assert all(op["shape"].startswith(("f32[", "s32[", "pred[", "(")) for op in figures["top_ops"])
  assert any("DAIMRN" in op["source"] for op in figures["top_ops"])


def test_ceiling_mode_reports_the_matmul_rate_from_xlas_flops(monkeypatch):
  """The ceiling's rate is XLA's FLOP count of the square matmul (2 n^3) over its median time."""
  monkeypatch.setattr(benchmark, "_timed", lambda compiled, args, steps, warmup: 1e-6)
  figures = benchmark.matmul_ceiling(sizes=(32, 64), repeats=1)
  assert figures["matmul_gflop_per_s"] == {"32": 65.5, "64": 524.3}  # 2 n^3 / 1 us
  assert figures["best_gflop_per_s"] == figures["matmul_gflop_per_s"]["64"]
  monkeypatch.undo()
  assert benchmark.matmul_ceiling(sizes=(64,), repeats=2)["best_gflop_per_s"] > 0
