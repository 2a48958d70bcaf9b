"""Bad input through the real launchers: one line, exit status 2, nothing written (docs/bad_input.md).

The table of docs/bad_input.md is the list of cases: every row's command is run as `python
launch/...` runs it (in a fork of a process that imported the launchers' modules once,
tests/launcher_server.py) against the files its first column describes (written here), and must
end with status 2, print no traceback, name the problem (the row's excerpt is in stderr) and leave
its work directory as it found it. Then the corrected command runs in the same work directory and
succeeds (a new Python process, as are the other tests' launches).
"""

import concurrent.futures
import dataclasses
import json
import os
import pathlib
import queue
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import scipy.io

from conftest import REPO, subprocess_env, write_custom_scene
from hsi_jax import config_util, workdir as workdir_lib
from hsi_jax.data import io, rasters, split_sources, splits
from hsi_jax.evaluate import metrics

# A module-scoped fixture builds its inputs once: under pytest-xdist (README) one worker runs them all.
pytestmark = pytest.mark.xdist_group("bad_input")

TABLE = REPO / "docs" / "bad_input.md"
IP_CUBE_KEY, IP_GT_KEY = "indian_pines_corrected", "indian_pines_gt"


def _rows():
  """(what is wrong, command, workdir note, excerpt) for each row of the table."""
  rows = []
  for line in TABLE.read_text().splitlines():
    cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
    if len(cells) != 3 or not cells[1].startswith("`"):
      continue
    what, command_cell, excerpt_cell = cells
    command = re.match(r"`([^`]+)`(.*)", command_cell)
    rows.append((what, command.group(1), command.group(2).strip(), excerpt_cell.strip("`")))
  return rows


def _ip_arrays():
  return (io.read_mat_array(io.BUNDLED_DIR / "Indian_pines_corrected.mat", IP_CUBE_KEY),
          io.read_mat_array(io.BUNDLED_DIR / "Indian_pines_gt.mat", IP_GT_KEY))


def _write_data_folders(root: pathlib.Path) -> None:
  """D/<name>: one scene file each (the other is found in the package), as the table says."""
  cube, gt = _ip_arrays()
  gt_bytes = (io.BUNDLED_DIR / "Indian_pines_gt.mat").read_bytes()

  def folder(name):
    path = root / name
    path.mkdir(parents=True)
    return path

  folder("empty")
  (folder("gt_truncated") / "Indian_pines_gt.mat").write_bytes(gt_bytes[:len(gt_bytes) // 2])
  (folder("gt_empty") / "Indian_pines_gt.mat").write_bytes(b"")
  (folder("gt_garbage") / "Indian_pines_gt.mat").write_bytes(
      np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
  scipy.io.savemat(folder("gt_wrong_key") / "Indian_pines_gt.mat", {"gt": gt})
  fractional = gt.astype(np.float64)
  fractional[10, 20] = 2.5
  scipy.io.savemat(folder("gt_fractional") / "Indian_pines_gt.mat", {IP_GT_KEY: fractional})
  negative = gt.astype(np.int16)
  negative[10, 20] = -1
  scipy.io.savemat(folder("gt_negative") / "Indian_pines_gt.mat", {IP_GT_KEY: negative})
  scipy.io.savemat(folder("gt_3d") / "Indian_pines_gt.mat", {IP_GT_KEY: np.stack([gt, gt], -1)})
  unknown = gt.copy()
  unknown[10, 20] = 17
  scipy.io.savemat(folder("gt_unknown_ids") / "Indian_pines_gt.mat", {IP_GT_KEY: unknown})
  cropped = folder("cropped")
  scipy.io.savemat(cropped / "Indian_pines_gt.mat", {IP_GT_KEY: gt[:100, :120]})
  scipy.io.savemat(cropped / "Indian_pines_corrected.mat", {IP_CUBE_KEY: cube[:100, :120]})
  with_nan = cube.astype(np.float32)
  with_nan[3, 4, 5] = np.nan
  scipy.io.savemat(folder("cube_nan") / "Indian_pines_corrected.mat", {IP_CUBE_KEY: with_nan})
  scipy.io.savemat(folder("cube_bands") / "Indian_pines_corrected.mat",
                   {IP_CUBE_KEY: cube[..., :150]})
  scipy.io.savemat(folder("cube_size") / "Indian_pines_corrected.mat", {IP_CUBE_KEY: cube[:100]})
  modified = cube.copy()
  modified[0, 0, 0] += 1
  scipy.io.savemat(folder("cube_modified") / "Indian_pines_corrected.mat", {IP_CUBE_KEY: modified})
  # The correction of the data rows: the ground truth re-saved as doubles holding the same ids.
  scipy.io.savemat(folder("gt_double") / "Indian_pines_gt.mat", {IP_GT_KEY: gt.astype(np.float64)})


def _write_split_files(root: pathlib.Path) -> None:
  """F/<name>: train / test maps as another paper might ship them; a user's own scene."""
  _, gt = _ip_arrays()
  gt = gt.astype(np.int32)
  rng = np.random.default_rng(0)
  train = np.where(rng.random(gt.shape) < 0.1, gt, 0)
  test = np.where(train > 0, 0, gt)
  root.mkdir(parents=True)
  np.savez(root / "masks_ok.npz", train=train, test=test)
  np.savez(root / "masks_no_test.npz", train=train)
  np.savez(root / "masks_shape.npz", train=train, test=test[:100, :100])
  fractional = test.astype(np.float64)
  fractional[10, 20] = 1.5
  scipy.io.savemat(root / "masks_fractional.mat", {"train": train.astype(np.float64),
                                                   "test": fractional})
  np.savez(root / "masks_windows.npz", train=train, test=test,
           train_windows=np.array([[0, 0, 4, 4], [140, 140, 150, 150]], np.int32))
  (root / "masks_garbage.npz").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
  np.savez(root / "masks_other_size.npz", train=train[:100, :100], test=test[:100, :100])
  wrong = test.copy()
  row, col = np.argwhere(test == 2)[0]
  wrong[row, col] = 3
  np.savez(root / "masks_wrong_label.npz", train=train, test=wrong)
  np.savez(root / "masks_overlap.npz", train=train, test=np.maximum(test, train))
  np.savez(root / "masks_untrained.npz", train=np.where(train == 16, 0, train), test=test)
  custom = write_custom_scene(root / "custom")
  scipy.io.savemat(root / "custom_gt_small.mat", {"labels": custom["gt_array"][:40]})
  scipy.io.savemat(root / "custom_two_arrays.mat", {"radiance": custom["cube_array"],
                                                    "reflectance": custom["cube_array"] / 1e4})
  (root / "three_names.txt").write_text("a\nb\nc\n")
  scipy.io.savemat(root / "custom_two_bands.mat", {"radiance": custom["cube_array"][..., :2]})
  np.savez(root / "masks_no_test_pixel.npz", train=train, test=np.zeros_like(test))
  _write_split_npz_files(root, gt)
  _write_predict_files(root)


def _write_predict_files(root: pathlib.Path) -> None:
  """F/knn_run: a finished KNN run on Indian Pines (with its bundle); F/knn_no_bundle: the same
  as a run finished before bundles existed; cubes predict cannot use."""
  trained = _run([sys.executable, "launch/train.py", "--config=configs/ip.py:model=knn",
                  f"--workdir={root / 'knn_run'}"])
  assert trained.returncode == 0, trained.stderr[-3000:]
  shutil.copytree(root / "knn_run", root / "knn_no_bundle", ignore=shutil.ignore_patterns("bundle"))
  cube, _ = _ip_arrays()
  rasters.write_cube(root / "ip_150_bands.tif", cube[..., :150])
  (root / "garbled.hdr").write_text("ENVI\nsamples = abc\nlines = 12 oops\n")
  (root / "garbled.img").write_bytes(bytes(1000))
  (root / "lonely.hdr").write_text("ENVI\nsamples = 10\nlines = 10\nbands = 3\ndata type = 2\n"
                                   "interleave = bsq\nbyte order = 0\nheader offset = 0\n")


def _write_split_npz_files(root: pathlib.Path, gt: np.ndarray) -> None:
  """F/npz_*.npz: a complete IP split.npz (ours, partition 1) and copies with one mistake each."""
  config = config_util.load_config(str(REPO / "configs" / "ip.py"))
  protocol, params = splits.params_from_config(config.split)
  arrays = splits.make_split(gt, 16, 1, protocol, params).arrays()

  def save(name, **changes):
    np.savez(root / f"{name}.npz", **dict(arrays, **changes))

  save("npz_ok")
  windows = arrays["train_windows"]
  test = arrays["test"].copy()  # a labelled pixel of the first training window made a test pixel
  r0, c0, r1, c1 = windows[0]
  row, col = np.argwhere(gt[r0:r1, c0:c1] > 0)[0] + (r0, c0)
  test[row, col] = gt[row, col]
  train, leaked = arrays["train"].copy(), arrays["leaked"].copy()
  train[row, col] = leaked[row, col] = 0
  save("npz_leaky", test=test, train=train, leaked=leaked)
  wrong = arrays["test"].copy()
  row, col = np.argwhere(wrong == 2)[0]
  wrong[row, col] = 3
  save("npz_wrong_label", test=wrong)
  outside = windows.copy()
  outside[3] = [143, 143, 147, 147]
  save("npz_outside", train_windows=outside)


# Work directories that hold something before the command runs (the row's note says what).
WORKDIR_SETUP = {
    "a finished work directory": {"results.json": "{}\n"},
    "a work directory of another config": {"config.json": json.dumps({"scene": "pu"}) + "\n"},
}


def _snapshot(path: pathlib.Path):
  if not path.exists():
    return None
  return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None)
          for p in sorted(path.rglob("*"))}


def _paths(text: str, tmp_path: pathlib.Path, workdir: pathlib.Path) -> str:
  """The table's W, D/<name> and F/<name> (in a command's word or an excerpt) as real paths."""
  text = re.sub(r"(?<![\w/])W(?=/|$)", str(workdir), text)
  text = re.sub(r"(?<![\w/])D/", f"{tmp_path}/data/", text)
  return re.sub(r"(?<![\w/])F/", f"{tmp_path}/files/", text)


def _argv(command: str, tmp_path: pathlib.Path, workdir: pathlib.Path):
  words = [_paths(word, tmp_path, workdir) for word in shlex.split(command)]
  return [sys.executable, f"launch/{words[0]}"] + words[1:]


def _run(argv, timeout=300):
  return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                        env=subprocess_env(devices=1))


class _ForkedLaunchers:
  """Runs launcher commands as _run does, in forks of tests/launcher_server.py processes that
  imported the launchers' modules once (one server per thread of the table's pool; each serves
  one command at a time). A command that outlives its timeout kills its server and reads as
  killed (returncode -9)."""

  def __init__(self, count: int, scratch: pathlib.Path):
    self.scratch, self.idle = scratch, queue.Queue()
    scratch.mkdir(parents=True, exist_ok=True)
    for _ in range(count):
      self.idle.put(self._start())

  @staticmethod
  def _start() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "launcher_server.py")], cwd=REPO, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=subprocess_env(devices=1),
        start_new_session=True)

  def run(self, argv, timeout=300) -> subprocess.CompletedProcess:
    server = self.idle.get()
    out = []
    for _ in ("stdout", "stderr"):
      fd, path = tempfile.mkstemp(dir=self.scratch)
      os.close(fd)
      out.append(path)
    try:
      server.stdin.write(json.dumps(dict(argv=argv[1:], stdout=out[0], stderr=out[1])) + "\n")
      server.stdin.flush()
      if select.select([server.stdout], [], [], timeout)[0]:
        answer = server.stdout.readline()
        if not answer:
          raise RuntimeError(f"launcher_server.py ended (status {server.wait()})")
        returncode = json.loads(answer)["returncode"]
        self.idle.put(server)
      else:  # the command hangs: its server goes, a new one takes its place
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        server.stdin.close()
        server.stdout.close()
        self.idle.put(self._start())
        returncode = -9
      return subprocess.CompletedProcess(argv, returncode, *(pathlib.Path(o).read_text()
                                                              for o in out))
    finally:
      for o in out:
        os.remove(o)

  def close(self) -> None:
    while not self.idle.empty():
      server = self.idle.get()
      server.stdin.close()
      server.wait(timeout=60)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
  root = tmp_path_factory.mktemp("bad_input")
  _write_data_folders(root / "data")
  _write_split_files(root / "files")
  return root


def test_the_table_covers_every_category():
  """Rows for each kind of mistake the issue lists: config values and flags, work directories,
  scene files, split files."""
  rows = _rows()
  assert len(rows) >= 40
  commands = " ".join(command for _, command, _, _ in rows)
  for needle in ("--config.train.epoch=", "batch_size=0", "num_seeds=0", "per_class=0",
                 "patch=0", "D/gt_truncated", "D/gt_empty", "D/gt_garbage", "D/gt_fractional",
                 "D/gt_negative", "D/cropped", "D/cube_nan", "F/masks_windows", "F/masks_shape",
                 "audit_split.py", "make_splits.py", "ablate.py", "predict.py", "F/garbled.hdr",
                 "F/knn_no_bundle", "export_bundle.py"):
    assert needle in commands, needle
  assert {what for what, *_ in rows} >= set(WORKDIR_SETUP)


def _run_row(inputs: pathlib.Path, run, index: int, row):
  """Runs the table's row `index` (in its own work directory under `inputs`). Returns (its
  excerpt with W, D/, F/ read as in the command, its `error: ` line or None, what is wrong with the
  outcome or None): exit status 2, no traceback, one `error: ` line holding the excerpt, the work
  directory as it was."""
  what, command, note, excerpt = row
  workdir = inputs / "workdirs" / f"row{index}"
  for name, text in WORKDIR_SETUP.get(what, {}).items():
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / name).write_text(text)
  before = _snapshot(workdir)
  result = run(_argv(command, inputs, workdir))
  excerpt = _paths(excerpt, inputs, workdir)
  problems = []
  if result.returncode != 2:
    problems.append(f"exit status {result.returncode}")
  if "Traceback" in result.stdout + result.stderr:
    problems.append("a traceback")
  error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  if len(error_lines) != 1:
    problems.append(f"{len(error_lines)} error lines")
  elif excerpt not in error_lines[0]:
    problems.append(f"no {excerpt!r} in the error line")
  if before != _snapshot(workdir):
    problems.append("the work directory changed")
  failure = (f"{what} ({command}): {', '.join(problems)}; stderr: {result.stderr[-600:]}"
             if problems else None)
  return excerpt, error_lines[0] if len(error_lines) == 1 else None, failure


def test_every_row_fails_with_one_line_and_writes_nothing(inputs):
  rows = _rows()
  workers = os.cpu_count() or 2
  launchers = _ForkedLaunchers(workers, inputs / "outputs")
  try:
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
      outcomes = list(pool.map(lambda index_row: _run_row(inputs, launchers.run, *index_row),
                               enumerate(rows)))
  finally:
    launchers.close()
  failures = [failure for _, _, failure in outcomes if failure]
  # Each excerpt names its own message: no other row's error line contains it (an excerpt that
  # other messages contain passes when the row fails for another reason).
  for index, ((what, *_), (excerpt, _, _)) in enumerate(zip(rows, outcomes)):
    others = [other for other_index, ((other, *_), (_, line, _)) in enumerate(zip(rows, outcomes))
              if other_index != index and line is not None and excerpt in line]
    if others:
      failures.append(f"{what}: its excerpt {excerpt!r} is also in the message of {others}")
  assert not failures, "\n".join(failures)


def test_corrected_commands_run_in_the_same_workdir(inputs, tmp_path):
  """The reruns a user makes after the message: the same --workdir, the mistake corrected. A
  ground truth re-saved as doubles holding the same ids is accepted (and verifies)."""
  attempts = [
      (["--config.split.pixel_ratoi=0.15"], ["--config.split.pixel_ratio=0.15"]),
      ([f"--config.data.root={inputs}/data/gt_truncated"],
       [f"--config.data.root={inputs}/data/gt_double"]),
  ]
  for index, (bad, good) in enumerate(attempts):
    workdir = tmp_path / f"w{index}"
    base = [sys.executable, "launch/train.py", "--config=configs/ip.py:model=knn",
            f"--workdir={workdir}"]
    failed = _run(base + bad)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr[-2000:]
    assert not workdir.exists()
    fixed = _run(base + good)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    results = json.loads((workdir / "results.json").read_text())
    assert results["num_test_pixels"] > 4000 and results["warnings"] == []


def test_verbose_shows_the_traceback(inputs):
  result = _run(_argv("train.py --config=configs/ip.py:model=knn --config.data.root=D/gt_empty "
                      "--workdir=W --verbose", inputs, inputs / "verbose"))
  # The same user error with its traceback: still exit status 2 (docs/bad_input.md), the
  # traceback ending in the error that names the file.
  assert result.returncode == 2, result.stderr[-2000:]
  assert "Traceback (most recent call last)" in result.stderr
  assert (f"DataError: {inputs}/data/gt_empty/Indian_pines_gt.mat is empty (0 bytes)"
          in result.stderr), result.stderr[-2000:]


def test_warnings_for_legal_but_meaningless_inputs(ground_truths, tmp_path):
  """What a run warns about (and keeps in results.json): one class, capped classes, few test
  pixels, collapsed predictions, a scene of another size where no hash is registered."""
  gt = ground_truths["ip"].gt
  params = splits.PixelsParams(patch=1, per_class=100, fraction=None, val_per_class=100)
  split = splits.make_split(gt, 16, 1, "pixels", params)
  warnings = splits.split_warnings(gt, split)
  small = [c for c in range(1, 17) if np.count_nonzero(gt == c) < 400]  # 100 + 100 + test
  assert len(warnings) == 1 and f"classes {split.info['capped_classes']}" in warnings[0]
  assert set(small) >= set(split.info["capped_classes"]) and 9 in split.info["capped_classes"]

  one_class = np.zeros((40, 40), np.int32)
  one_class[5:15, 5:15] = 1
  few = splits.make_split(one_class, 1, 1, "pixels", dataclasses.replace(params, per_class=5))
  warnings = splits.split_warnings(one_class, few)
  assert any("the ground truth holds a single class" in w for w in warnings)
  assert any(f"only {np.count_nonzero(few.test)} test pixels" in w for w in warnings)

  true = np.array([1, 2, 3, 2])
  assert metrics.collapse_warnings(true, np.array([1, 2, 2, 2])) == []
  assert "class 2 for all 4 test pixels" in metrics.collapse_warnings(true, np.full(4, 2))[0]
  assert metrics.collapse_warnings(np.array([2, 2]), np.array([2, 2])) == []  # one class: says so

  pc_gt = np.zeros((50, 60), np.uint8)  # Pavia Centre has no registered hash: it still loads
  pc_gt[10:20, 10:20] = 1
  scipy.io.savemat(tmp_path / "Pavia_gt.mat", {"pavia_gt": pc_gt})
  labels = io.load_ground_truth("pc", root=str(tmp_path))
  assert len(labels.warnings) == 1 and "1096x715 pixels in the registry" in labels.warnings[0]


def test_a_split_without_test_pixels_is_refused():
  gt = np.zeros((10, 10), np.int32)
  gt[0, 0], gt[5, 5] = 1, 2  # one pixel per class: it trains, nothing is left to test
  params = splits.PixelsParams(patch=1, per_class=1, fraction=None, val_per_class=1)
  with pytest.raises(splits.SplitError, match="leaves no test pixel"):
    splits.make_split(gt, 2, 1, "pixels", params)


def test_collapsed_predictions_are_kept_in_results(indian_pines, tmp_path):
  """workdir.evaluate_map, which every family's results go through, records the warning."""
  config = config_util.load_config(str(REPO / "configs" / "ip.py") + ":model=knn")
  split = split_sources.split_from_config(config, labels=indian_pines)[0]
  results = workdir_lib.evaluate_map(config, tmp_path, split, indian_pines,
                                     np.full(indian_pines.gt.shape, 11, np.int32))
  assert len(results["warnings"]) == 1 and "collapsed to one class: class 11" in results["warnings"][0]
  assert results["oa"] == pytest.approx(np.mean(split.test[split.test > 0] == 11))


def test_a_warning_reaches_the_output_and_results_json(tmp_path, ground_truths):
  """Through the launcher: SSAN's 100 / 100 pixels per class on Indian Pines, which its classes of
  fewer than 300 pixels cannot give while keeping as many for test as for validation."""
  counts = np.bincount(ground_truths["ip"].gt.ravel(), minlength=17)[1:]
  small = [c + 1 for c in range(16) if counts[c] < 300]
  result = _run([sys.executable, "launch/train.py", "--config=configs/ip.py:model=knn,protocol=pixels",
                 f"--workdir={tmp_path}"])
  assert result.returncode == 0, result.stderr[-3000:]
  warned = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
  results = json.loads((tmp_path / "results.json").read_text())
  assert len(warned) == 1 and f"classes {small} are too small" in warned[0], (warned, small)
  assert results["warnings"] == [warned[0][len("warning: "):]]
