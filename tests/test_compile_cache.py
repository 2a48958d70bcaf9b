"""The persistent compilation cache (hsi_jax/compile_cache.py) through the launcher: a second run
of the same config in a new work directory loads its programs and gives the same numbers; a
damaged cache falls back to compiling."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, subprocess_env
from hsi_jax import compile_cache

QUICK_SSAN = ["--config=configs/ip.py:runlocal,model=ssan", "--config.train.steps=100",
              "--config.train.eval_every=100"]


def _train(workdir: pathlib.Path, cache: str):
  result = subprocess.run([sys.executable, "launch/train.py", *QUICK_SSAN, f"--workdir={workdir}"],
                          cwd=REPO, capture_output=True, text=True, timeout=900,
                          env=subprocess_env(devices=1, **{compile_cache.ENV: cache}))
  assert result.returncode == 0, result.stderr[-3000:]
  loaded = [line.split() for line in result.stdout.splitlines()
            if "compiled programs were loaded" in line]  # "N of the M compiled programs ..."
  return (int(loaded[0][0]), int(loaded[0][3])) if loaded else (0, None), result


def _same_run(a: pathlib.Path, b: pathlib.Path) -> None:
  np.testing.assert_array_equal(np.load(a / "map.npy"), np.load(b / "map.npy"))
  losses = [[json.loads(line)["loss"] for line in (d / "metrics.jsonl").read_text().splitlines()]
            for d in (a, b)]
  assert losses[0] == losses[1]


@pytest.mark.slow
def test_a_second_run_loads_its_programs_and_a_damaged_cache_compiles_again(tmp_path):
  cache = tmp_path / "cache"
  (first, _), _ = _train(tmp_path / "first", str(cache))
  entries = sorted(p for p in cache.iterdir() if p.is_file())
  assert first == 0 and entries
  (second, compiled), result = _train(tmp_path / "second", str(cache))
  # every program of the run loaded, the small ones too, and no program per leaf of the state (a
  # seed's variables taken out or copied leaf by leaf compiled one per leaf shape: dozens)
  assert second == compiled and 3 <= compiled <= 20
  assert "(from the cache)" in result.stdout
  _same_run(tmp_path / "first", tmp_path / "second")
  for entry in entries:  # every entry cut short: unreadable, so compiled again
    entry.write_bytes(entry.read_bytes()[:64])
  (third, _), result = _train(tmp_path / "third", str(cache))
  assert third < second and "Traceback" not in result.stderr
  _same_run(tmp_path / "first", tmp_path / "third")


def test_where_the_cache_is(tmp_path, monkeypatch):
  monkeypatch.delenv(compile_cache.ENV, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert compile_cache.cache_dir("") == tmp_path / "hsi_jax" / "compile"
  assert compile_cache.cache_dir("~/elsewhere") == pathlib.Path.home() / "elsewhere"
  assert compile_cache.cache_dir("off") is None
  monkeypatch.setenv(compile_cache.ENV, "OFF")  # the environment overrides the config
  assert compile_cache.cache_dir(str(tmp_path / "mine")) is None
  monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "env"))
  assert compile_cache.cache_dir("off") == tmp_path / "env"
