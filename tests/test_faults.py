"""The faults a cluster brings (docs/faults.md), each injected into the launcher's run: a signal
within a round, a second launch, a damaged checkpoint, changed inputs, a full or read-only
filesystem, stale temporaries."""

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io

from hsi_jax import checkpoint, errors, loop, run
from hsi_jax.data import split_files

from conftest import REPO, subprocess_env, write_custom_scene

STOP_LINE = "stopped by SIGTERM; run the same command to resume from the last checkpoint."
TINY = [f"--config={REPO / 'configs' / 'ip.py'}:runlocal", "--config.train.epochs=3",
        "--config.train.checkpoint_every=1"]  # ~15 s an epoch here: a signal lands within one


def launch(workdir, *args, preexec_fn=None):
  args = args or TINY
  return subprocess.Popen([sys.executable, "launch/train.py", *args, f"--workdir={workdir}"],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=subprocess_env(), preexec_fn=preexec_fn)


def finish(process, timeout=1200) -> str:
  output, _ = process.communicate(timeout=timeout)
  return output


def wait_for_line(process, pattern: str, lines: list, timeout=1200) -> str:
  """Reads the process's output until a line matches `pattern` (kept in `lines`)."""
  deadline = time.time() + timeout
  for line in process.stdout:
    lines.append(line.rstrip("\n"))
    if re.search(pattern, line):
      return line
    assert time.time() < deadline, "\n".join(lines[-20:])
  raise AssertionError(f"the run ended before {pattern!r}:\n" + "\n".join(lines[-20:]))


def metrics(workdir) -> list[dict]:
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_signal_while_compiling_ends_the_run_at_once_in_one_line(tmp_path):
  """SIGTERM while the launcher compiles the training chunk, with no compilation cache (so the
  compile takes tens of seconds here): just after "compiling" (JAX tracing in Python) and seconds
  later (XLA compiling, where an exception raised from the handler used to end in a crash at
  interpreter shutdown, exit 139). Each time: exit 143, nothing printed after "compiling" but the
  stop's one line, no checkpoint saved."""
  env = subprocess_env(HSI_JAX_COMPILE_CACHE="off")
  for delay in (0.2, 5.0):  # tracing + lowering take ~4 s of the ~30 s here
    workdir = tmp_path / f"after_{delay}s"
    process = subprocess.Popen([sys.executable, "launch/train.py", *TINY, f"--workdir={workdir}"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    wait_for_line(process, r"^compiling the training epoch", [])
    time.sleep(delay)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr[-3000:]
    assert stdout == "", f"printed after 'compiling' (did the compile end before the signal?): {stdout}"
    assert stderr.splitlines()[-1] == STOP_LINE, stderr[-3000:]
    for crash in ("Traceback", "Exception ignored", "Fatal Python error"):
      assert crash not in stderr, stderr[-3000:]
    latest = workdir / "checkpoints" / "latest"
    assert not latest.exists() or not any(p.name.isdigit() for p in latest.iterdir())


STOP_SCRIPT = """
import os, signal, sys
from hsi_jax import checkpoint, fileutil, preemption
with preemption.handle_signals():
  if sys.argv[1] == "write":
    with checkpoint._stderr_held(), fileutil.atomic_path(sys.argv[2]) as tmp:
      tmp.write_text("half of it")
      os.kill(os.getpid(), signal.SIGTERM)
      print("not stopped")
  else:
    with preemption.deferred():
      os.kill(os.getpid(), signal.SIGTERM)
      print("deferred", flush=True)
    print("not stopped after deferred()")
"""


def test_a_signal_ends_the_process_with_its_line_and_no_temporary(tmp_path):
  """The launchers' signal handling (preemption.handle_signals) in a child process: SIGTERM during
  an atomic write, while a checkpoint save holds stderr, ends it with exit 143 and the one line
  on the stderr it started with, the write's temporary removed and its target never written;
  SIGTERM inside deferred() after the training loop's last look ends it when deferred() is left."""
  line = STOP_LINE + "\n"
  target = tmp_path / "out" / "results.json"
  write = subprocess.run([sys.executable, "-c", STOP_SCRIPT, "write", str(target)],
                         capture_output=True, text=True, env=subprocess_env())
  assert (write.returncode, write.stdout, write.stderr) == (143, "", line), write.stderr[-3000:]
  assert list(target.parent.iterdir()) == []
  after = subprocess.run([sys.executable, "-c", STOP_SCRIPT, "deferred"], capture_output=True,
                         text=True, env=subprocess_env())
  assert (after.returncode, after.stdout, after.stderr) == (143, "deferred\n", line), after.stderr


@pytest.mark.slow
def test_signals_a_second_launch_and_a_damaged_checkpoint_end_as_an_uninterrupted_run(tmp_path):
  """One run of the quick DA-IMRN through the launcher: a second launch into its work directory is
  refused while it runs (one line naming it, exit 2); SIGTERM within epoch 2 stops it there with
  a checkpoint (exit 143, one line); the rerun resumes at that step, and SIGINT within epoch 3
  stops it again (exit 130); its latest checkpoint is then garbled, and the last rerun sets it
  aside, resumes from the save before it and finishes. Its losses, metrics lines (each round
  once) and map equal an uninterrupted run's."""
  reference = tmp_path / "reference"
  assert launch(reference).wait(timeout=1200) == 0
  workdir = tmp_path / "run"
  first, lines = launch(workdir), []
  wait_for_line(first, r"^epoch 1/3 \[.*\] \d+/112 steps", lines)
  second = subprocess.run([sys.executable, "launch/train.py", *TINY, f"--workdir={workdir}"],
                          cwd=REPO, capture_output=True, text=True, env=subprocess_env())
  assert second.returncode == 2 and second.stdout == ""
  assert re.fullmatch(rf"error: {re.escape(str(workdir))} is in use by another run \(pid "
                      rf"{first.pid} on \S+ since [\d-]+ [\d:]+ UTC; lock \S+\.lock\); wait for "
                      r"it to end, or stop it: a run that has died releases the lock by "
                      r"itself\.\n", second.stderr), second.stderr
  wait_for_line(first, r"^epoch 2/3 \[.*\] \d+/112 steps", lines)
  first.send_signal(signal.SIGTERM)
  output = "\n".join(lines) + "\n" + finish(first)
  assert first.returncode == 143, output[-3000:]
  stop = re.search(r"stopped by SIGTERM at epoch 2, step (\d+) of 112, and saved; run the same "
                   r"command to resume\.", output)
  assert stop and 0 < int(stop.group(1)) < 112 and "Traceback" not in output

  second_run, lines = launch(workdir), []
  wait_for_line(second_run, rf"Resuming {re.escape(str(workdir))} at epoch 2, step "
                rf"{int(stop.group(1)) + 1}\.", lines)
  wait_for_line(second_run, r"^epoch 3/3 \[.*\] \d+/112 steps", lines)
  second_run.send_signal(signal.SIGINT)
  output = "\n".join(lines) + "\n" + finish(second_run)
  assert second_run.returncode == 130, output[-3000:]
  assert re.search(r"stopped by SIGINT at epoch 3, step \d+ of 112, and saved", output)
  assert "Traceback" not in output and "KeyboardInterrupt" not in output

  saves = sorted(int(p.name) for p in (workdir / "checkpoints" / "latest").iterdir()
                 if p.name.isdigit())
  assert len(saves) == 2  # the SIGINT's save and the one before it
  for data in (workdir / "checkpoints" / "latest" / str(saves[-1])).rglob("*"):
    if data.is_file() and data.parent.name == "d":
      data.write_bytes(data.read_bytes()[:40])  # truncated, as a disk error leaves it
  output = finish(launch(workdir))
  assert "results.json" in output.splitlines()[-1], output[-3000:]
  assert re.search(rf"warning: checkpoint {re.escape(str(workdir))}/checkpoints/latest/"
                   rf"{saves[-1]} could not be read \(.*\); moved to .*/checkpoints/damaged/", output)
  assert [p.name.split("-")[0] for p in (workdir / "checkpoints" / "damaged").iterdir()] == [
      str(saves[-1])]

  ours, theirs = metrics(workdir), metrics(reference)
  assert [m["round"] for m in ours] == [0, 1, 2] == [m["round"] for m in theirs]
  np.testing.assert_allclose([m["loss"] for m in ours], [m["loss"] for m in theirs], rtol=1e-6)
  assert [m["val_accuracy"] for m in ours] == [m["val_accuracy"] for m in theirs]
  assert np.array_equal(np.load(workdir / "map.npy"), np.load(reference / "map.npy"))
  results = json.loads((workdir / "results.json").read_text())
  assert results["confusion_matrix"] == json.loads(
      (reference / "results.json").read_text())["confusion_matrix"]


def test_a_work_directory_locked_by_another_process_is_refused_before_the_scene(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / ".lock").write_text("pid 4242 on elsewhere since 2026-12-03 08:00:00 UTC")
  holder = subprocess.Popen([sys.executable, "-c", (
      "import fcntl, sys, time; f = open(sys.argv[1], 'r+'); fcntl.flock(f, fcntl.LOCK_EX); "
      "print('held', flush=True); time.sleep(120)"), str(workdir / ".lock")],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    result = subprocess.run([sys.executable, "launch/train.py", *TINY, f"--workdir={workdir}"],
                            cwd=REPO, capture_output=True, text=True, env=subprocess_env())
  finally:
    holder.kill()
    holder.wait()
  assert result.returncode == 2 and result.stdout == ""  # refused before the scene is loaded
  assert result.stderr == (f"error: {workdir} is in use by another run (pid 4242 on elsewhere "
                           f"since 2026-12-03 08:00:00 UTC; lock {workdir / '.lock'}); wait for "
                           "it to end, or stop it: a run that has died releases the lock by "
                           "itself.\n")
  assert sorted(p.name for p in workdir.iterdir()) == [".lock"]


def _knn_custom(tmp_path):
  scene = write_custom_scene(tmp_path / "data")
  spec = f"--config={REPO / 'configs' / 'custom.py'}:cube={scene['cube']},gt={scene['gt']},model=knn"
  return scene, spec


def test_changed_inputs_are_refused_and_stale_temporaries_removed(tmp_path):
  """A KNN run on a custom scene, its results.json removed (as a kill before its rename leaves
  the run). A cube replaced by another of the same shape: the rerun refuses in one line naming
  the file, exit 2, nothing in the work directory touched. With the original back, the rerun
  removes the temporaries a killed write left and ends with the first run's results."""
  scene, spec = _knn_custom(tmp_path)
  workdir = tmp_path / "run"
  assert finish(launch(workdir, spec)).splitlines()[-1].endswith("results.json")
  first = json.loads((workdir / "results.json").read_text())
  recorded = json.loads((workdir / "inputs.json").read_text())
  assert set(recorded) == {"data.cube", "data.gt"}
  assert recorded["data.cube"]["path"] == str(scene["cube"])
  (workdir / "results.json").unlink()
  original = scene["cube"].read_bytes()
  scipy.io.savemat(scene["cube"], {"radiance": scene["cube_array"][::-1].copy()})
  def contents():  # all but the lock, which each launch takes (and writes its pid to)
    return {p: p.stat().st_mtime_ns for p in workdir.rglob("*") if p.name != ".lock"}

  before = contents()
  result = subprocess.run([sys.executable, "launch/train.py", spec, f"--workdir={workdir}"],
                          cwd=REPO, capture_output=True, text=True, env=subprocess_env())
  assert result.returncode == 2 and result.stdout == ""
  assert result.stderr.startswith(f"error: {scene['cube']} (data.cube) holds other data now "
                                  f"(sha256 {recorded['data.cube']['sha256'][:12]} when the run "
                                  "began, ")
  assert result.stderr.endswith("Put the original file back, or use a new --workdir.\n")
  assert contents() == before

  scene["cube"].write_bytes(original)
  stale = [workdir / ".map.npy.k2j4h1xq.tmp.npy", workdir / ".bundle.a8d7f6g5.tmp"]
  stale[0].write_bytes(b"half a map")
  stale[1].mkdir()
  (workdir / ".notes.txt").write_text("not ours: kept")
  assert finish(launch(workdir, spec)).splitlines()[-1].endswith("results.json")
  assert not any(p.exists() for p in stale) and (workdir / ".notes.txt").exists()
  again = json.loads((workdir / "results.json").read_text())
  assert again["confusion_matrix"] == first["confusion_matrix"]


def test_a_changed_split_file_is_refused(tmp_path):
  """The same for a split.npz given by --config.split.npz: a rerun with other bytes in it is
  refused before the scene is loaded."""
  source = tmp_path / "made"
  scene, spec = _knn_custom(tmp_path)
  assert finish(launch(source, spec)).splitlines()[-1].endswith("results.json")
  npz = tmp_path / "split.npz"
  shutil.copy(source / "split.npz", npz)
  workdir = tmp_path / "run"
  with_npz = [spec, f"--config.split.npz={npz}"]
  assert finish(launch(workdir, *with_npz)).splitlines()[-1].endswith("results.json")
  (workdir / "results.json").unlink()
  split = split_files.load_split(npz)
  moved = np.flatnonzero(split.val.reshape(-1))[:3]
  val, test = split.val.reshape(-1).copy(), split.test.reshape(-1).copy()
  test[moved], val[moved] = val[moved], 0
  arrays = dict(np.load(npz))
  arrays.update(val=val.reshape(split.val.shape), test=test.reshape(split.test.shape))
  np.savez(npz, **arrays)
  result = subprocess.run([sys.executable, "launch/train.py", *with_npz, f"--workdir={workdir}"],
                          cwd=REPO, capture_output=True, text=True, env=subprocess_env())
  assert result.returncode == 2 and result.stdout == ""
  assert result.stderr.startswith(f"error: {npz} (split.npz) holds other data now")


def _no_file_over(limit):
  def limited():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
  return limited


@pytest.mark.slow
def test_a_checkpoint_that_cannot_be_written_is_one_line_and_leaves_nothing_partial(tmp_path):
  """No file over 256 KB may be written (RLIMIT_FSIZE: each write past it fails, as on a full
  disk): the split's files fit, the first checkpoint does not. One line saying where and how much
  it needed, exit 2, no temporary checkpoint left; without the limit the same command trains."""
  workdir = tmp_path / "run"
  one_epoch = [*TINY, "--config.train.epochs=1"]  # the first checkpoint is the first epoch's
  process = launch(workdir, *one_epoch, preexec_fn=_no_file_over(1 << 18))
  output = finish(process)
  assert process.returncode == 2, output[-3000:]
  last = output.strip().splitlines()[-1]
  assert re.fullmatch(rf"error: cannot write {re.escape(str(workdir))}/checkpoints/latest\S*: "
                      r"File too large \([\d,.]+ MB needed, [\d,.]+ MB free there\); free some "
                      r"space or use a --workdir on another filesystem \(a rerun of the same "
                      r"command resumes from the last checkpoint\)\.", last), last
  assert "Traceback" not in output
  assert [p.name for p in (workdir / "checkpoints" / "latest").iterdir()] == []
  output = finish(launch(workdir, *one_epoch))
  assert output.splitlines()[-1].endswith("results.json"), output[-3000:]


@contextlib.contextmanager
def read_only_directory(path):
  """path as a directory the launcher cannot write: mode 0555 for a user, a read-only tmpfs for
  root (who ignores modes); skipped where root cannot mount."""
  path.mkdir()
  if os.geteuid() != 0:
    path.chmod(0o555)
    yield path
    path.chmod(0o755)
    return
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
                           capture_output=True)
  if mounted.returncode != 0:
    pytest.skip("root cannot mount a read-only tmpfs here; run the suite as a user to test it")
  try:
    yield path
  finally:
    subprocess.run(["umount", str(path)], check=True)


def test_a_work_directory_that_cannot_be_written_is_one_line_before_the_scene(tmp_path):
  with read_only_directory(tmp_path / "readonly") as readonly:
    result = subprocess.run([sys.executable, "launch/train.py", *TINY,
                             f"--workdir={readonly / 'run'}"], cwd=REPO, capture_output=True,
                            text=True, env=subprocess_env())
  assert result.returncode == 2 and result.stdout == ""  # before the scene is loaded
  assert re.fullmatch(rf"error: cannot write {re.escape(str(readonly / 'run'))}: "
                      r"(Read-only file system|Permission denied); give a --workdir you can "
                      r"write to \(a rerun of the same command resumes from the last "
                      r"checkpoint\)\.\n", result.stderr), result.stderr
  file = tmp_path / "a_file"
  file.write_text("")
  result = subprocess.run([sys.executable, "launch/train.py", *TINY, f"--workdir={file / 'run'}"],
                          cwd=REPO, capture_output=True, text=True, env=subprocess_env())
  assert result.returncode == 2 and result.stdout == ""
  assert result.stderr.startswith(f"error: cannot write {file / 'run'}: Not a directory")


def test_a_damaged_save_is_set_aside_and_the_one_before_used(tmp_path):
  """checkpoint.Checkpoints, as run.py uses it: two saves kept; a garbled latest one is moved to
  checkpoints/damaged with a warning and the one before it restored; none readable -> one
  UserError naming the directory to remove."""
  warnings = []
  saves = checkpoint.Checkpoints(tmp_path, warn=warnings.append)
  for step in (3, 7, 9):
    saves.save(step, {"w": jnp.full((2, 3), float(step)), "loop": loop.start(2)})
  latest = tmp_path / "checkpoints" / "latest"
  assert sorted(int(p.name) for p in latest.iterdir()) == [7, 9]

  def garble(step):
    for data in (latest / str(step)).rglob("*"):
      if data.is_file() and data.parent.name == "d":
        data.write_bytes(b"garbage")

  garble(9)
  saves = checkpoint.Checkpoints(tmp_path, warn=warnings.append)
  restored = saves.restore({"w": jnp.zeros((2, 3)), "loop": loop.start(2)})
  assert float(restored["w"][0, 0]) == 7.0 and len(warnings) == 1
  assert warnings[0].startswith(f"warning: checkpoint {latest / '9'} could not be read (")
  assert [p.name.split("-")[0] for p in (tmp_path / "checkpoints" / "damaged").iterdir()] == ["9"]
  garble(7)
  with pytest.raises(errors.UserError, match=rf"remove {re.escape(str(tmp_path / 'checkpoints'))}"
                     " to train this run again"):
    saves.restore({"w": jnp.zeros((2, 3)), "loop": loop.start(2)})


def test_a_full_disk_is_said_with_the_room_needed_and_left(tmp_path):
  error = OSError(28, os.strerror(28), str(tmp_path / "checkpoints" / "latest" / "9"))
  message = errors.filesystem_message(error, tmp_path, needed=3 * 2**20)
  free = shutil.disk_usage(tmp_path).free / 2**20
  assert message == (f"cannot write {tmp_path}/checkpoints/latest/9: No space left on device "
                     f"(3.0 MB needed, {free:,.1f} MB free there); free some space or use a "
                     "--workdir on another filesystem (a rerun of the same command resumes from "
                     "the last checkpoint).")
  wrapped = ValueError("Error writing local file: [OS error 28: No space left on device]")
  assert errors.os_error_in(RuntimeError("save failed")) is None
  try:
    raise RuntimeError("save failed") from wrapped
  except RuntimeError as chained:
    assert errors.os_error_in(chained).errno == 28


def test_a_checkpoint_from_before_chunks_resumes(tmp_path):
  """A checkpoint an earlier version wrote (its loop state without the chunk fields, saved after
  round 4) restores through run's adapter as that loop at the start of round 5."""
  old_loop = {"round": np.asarray(5, np.int64), "best_val": np.asarray([0.5, 0.7]),
              "best_round": np.asarray([3, 4], np.int64), "stopped": np.asarray([False, True]),
              "rounds_run": np.asarray([5, 5], np.int64), "train_seconds": np.asarray(12.5)}
  checkpoint.Checkpoints(tmp_path).save(4, {"states": {"w": jnp.ones(3)},
                                            "best": {"w": jnp.ones(3)}, "loop": old_loop})
  target = {"states": {"w": jnp.zeros(3)}, "best": {"w": jnp.zeros(3)}, "loop": loop.start(2)}
  restored = checkpoint.Checkpoints(tmp_path).restore(target, adapt=run._loop_before_chunks)
  resumed = restored["loop"]
  assert isinstance(resumed, loop.LoopState) and int(resumed.round) == 5
  assert int(resumed.chunk) == 0 and resumed.loss_sum.tolist() == [0.0, 0.0]
  assert resumed.best_val.tolist() == [0.5, 0.7] and resumed.stopped.tolist() == [False, True]
  assert float(resumed.train_seconds) == 12.5 and float(restored["best"]["w"][0]) == 1.0
  # A checkpoint of this version is restored as it is (the adapter says so: None).
  checkpoint.Checkpoints(tmp_path / "new").save(7, target)
  again = checkpoint.Checkpoints(tmp_path / "new").restore(target, adapt=run._loop_before_chunks)
  assert isinstance(again["loop"], loop.LoopState) and int(again["loop"].round) == 0
