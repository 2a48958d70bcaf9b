"""Sweeps and ablations: overrides, variant parsing, the ablation switches, an ablation table."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

import numpy as np

from hsi_jax import benchmark, config_util, models, sweep
from hsi_jax.data import split_files

from conftest import REPO, subprocess_env, write_custom_scene

RUNLOCAL = str(REPO / "configs" / "ip.py") + ":runlocal"


def test_overrides_take_the_leaf_type_and_unknown_leaves_fail():
  config = config_util.load_config(RUNLOCAL)
  sweep.apply_overrides(config, [sweep.parse_override("model.use_scam=false"),
                                 sweep.parse_override("train.learning_rate=3e-4"),
                                 sweep.parse_override("train.epochs=7"), ("num_seeds", 3)])
  assert config.model.use_scam is False and config.train.learning_rate == 3e-4
  assert config.train.epochs == 7 and config.num_seeds == 3
  with pytest.raises(config_util.ConfigError, match="valid keys there: .*use_sam"):
    sweep.apply_overrides(config, [("model.use_scma", False)])
  with pytest.raises(config_util.ConfigError, match="Override train.epochs must be a int, got .many."):
    sweep.apply_overrides(config, [sweep.parse_override("train.epochs=many")])
  with pytest.raises(config_util.ConfigError, match="section.leaf=value"):
    sweep.parse_override("model.use_scam")


def test_parse_variants():
  assert sweep.parse_variants(["base", "lr:train.learning_rate=1e-4;train.epochs=3"]) == [
      ("base", ()), ("lr", (("train.learning_rate", "1e-4"), ("train.epochs", "3")))]
  with pytest.raises(config_util.ConfigError):
    sweep.parse_variants([":train.epochs=3"])


@pytest.mark.parametrize("name, overrides", sweep.DA_IMRN_ABLATION[1:])
def test_each_ablation_variant_builds_a_smaller_network(name, overrides):
  def num_params(config):
    model = models.build_model(config.model, 16)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 4, 4, 200))))
    return sum(x.size for x in jax.tree.leaves(variables))
  config = config_util.load_config(str(REPO / "configs" / "ip.py") + ":ip_spatial=multiscale")
  full = num_params(config)
  sweep.apply_overrides(config, overrides)
  assert num_params(config) < full, name


@pytest.mark.slow
def test_ablate_writes_mean_and_std_per_variant(tmp_path):
  base = RUNLOCAL
  variants = [("full", (("model.width", 0.125), ("train.epochs", 1))),
              ("no_attention", (("model.width", 0.125), ("train.epochs", 1),
                                ("model.use_scam", False), ("model.use_sam", False)))]
  table, summaries = sweep.ablate(base, variants, num_seeds=2, root=tmp_path)
  lines = table.splitlines()
  assert lines[0].startswith("| variant | OA %") and len(lines) == 4
  assert lines[2].startswith("| full |") and lines[3].startswith("| no_attention |")
  for name in ("full", "no_attention"):
    results = json.loads((tmp_path / name / "results.json").read_text())
    assert results["vmapped"] and len(results["runs"]) == 2
    assert summaries[name]["runs"] == 2
    assert summaries[name]["mean"]["oa"] == pytest.approx(
        sum(r["oa"] for r in results["runs"]) / 2)
  assert (summaries["full"]["mean"]["oa"], summaries["full"]["std"]["oa"]) != \
      (summaries["no_attention"]["mean"]["oa"], summaries["no_attention"]["std"]["oa"])
  # Started again, the finished variants are read back, not retrained.
  again, _ = sweep.ablate(base, variants, num_seeds=2, root=tmp_path)
  assert again == table


@pytest.mark.slow
def test_compare_takes_its_rows_from_the_config_and_reports_every_column(tmp_path):
  """launch/compare.py on a small custom scene, rows and partitions from --config.compare.*: a
  line per model with its parameters and forward FLOPs (benchmark.forward_flops), OA / AA / kappa
  under both protocols with the leakage audit, the masked-input control of the pixel model under
  `blocks` (its mean recomputed from each run's control_map.npy), training seconds; the .json
  beside the table."""
  scene = write_custom_scene(tmp_path / "data")
  config = f"{REPO / 'configs' / 'custom.py'}:cube={scene['cube']},gt={scene['gt']},runlocal"
  out = tmp_path / "table.md"
  subprocess.run([sys.executable, str(REPO / "launch" / "compare.py"), f"--config={config}",
                  f"--root={tmp_path / 'root'}", f"--out={out}",
                  "--config.compare.models=('svm','cnn3d')", "--config.compare.partitions=(1,2)"],
                 env=subprocess_env(), check=True, capture_output=True, text=True)
  lines = out.read_text().splitlines()
  assert len(lines) == 4 and [line.split(" | ")[0] for line in lines[2:]] == ["| svm", "| cnn3d"]
  header = lines[0].split(" | ")
  assert header[1:3] == ["parameters", "forward MFLOP / patch"]
  assert header[3].startswith("pixels: OA % / AA % / kappa (test pixels in a training input: ")
  assert header[4].startswith("blocks: OA") and header[5].startswith("blocks, control")
  summaries = json.loads(out.with_suffix(".json").read_text())["summaries"]
  cnn3d = config_util.load_config(config + ",model=cnn3d")
  flops = benchmark.forward_flops(cnn3d)
  assert summaries["cnn3d"]["forward_flops"] == flops and summaries["svm"]["forward_flops"] is None
  svm, cnn = (line.split(" | ") for line in lines[2:])
  assert cnn[2] == f"{flops / 1e6:,.2f}" and svm[1:3] == ["—", "—"]
  assert svm[5].startswith("= test")  # KNN / SVM read no neighbour: no control
  controls = []
  for k in (1, 2):
    run_dir = tmp_path / "root" / "cnn3d_blocks" / f"partition{k}"
    test = split_files.load_split(run_dir / "split.npz").test
    controls.append(np.mean(np.load(run_dir / "control_map.npy")[test > 0] == test[test > 0]))
  blocks = summaries["cnn3d_blocks"]
  assert blocks["control"]["mean"]["oa"] == pytest.approx(np.mean(controls))
  assert cnn[5].startswith(f"{100 * np.mean(controls):.2f} ± {100 * np.std(controls):.2f}")
  seconds = [json.loads((tmp_path / "root" / "cnn3d_pixels" / f"partition{k}" /
                         "results.json").read_text())["train_seconds"] for k in (1, 2)]
  assert cnn[-1].startswith(f"{np.mean(seconds):,.0f} / ")
