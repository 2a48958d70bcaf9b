"""Sweeps and ablations: overrides, variant parsing, the ablation switches, an ablation table."""

import json

import jax
import jax.numpy as jnp
import pytest

from hsi_jax import config_util, models, sweep

from conftest import REPO

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
