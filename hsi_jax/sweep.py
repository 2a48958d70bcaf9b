"""Sweeps: one config string + leaf overrides, run over partitions, each run in its own workdir.

`run_variant` trains (or, when its workdir already holds results.json of the same config, reads)
one run per partition under root/<variant>/partition<k>; an interrupted sweep started again resumes
its unfinished run and skips the finished ones. `summarize` gives the mean and std (population,
ddof=0, over the runs) of OA, AA and kappa; `format_table` writes the markdown rows.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Optional, Sequence

import numpy as np
from ml_collections import config_flags

from hsi_jax import (benchmark, config_util, families, fileutil, run as run_lib, validate,
                     workdir as workdir_lib)
from hsi_jax.data import audit, split_files
from hsi_jax.evaluate.metrics import SUMMARY_KEYS


@dataclasses.dataclass(frozen=True)
class Variant:
  name: str                  # also the workdir folder
  config: str                # 'configs/ip.py:runlocal,model=ssan'
  overrides: tuple = ()      # (('model.use_scam', False), ...)


def parse_override(text: str) -> tuple[str, object]:
  """'model.use_scam=false' -> ('model.use_scam', 'false'); typed later by apply_overrides."""
  path, has_value, value = text.partition("=")
  if not has_value or not path:
    raise config_util.ConfigError(f"An override is 'section.leaf=value', got {text!r}.")
  return path.strip(), value.strip()


def apply_overrides(config, overrides) -> None:
  """Sets dotted config leaves (text values take the leaf's type); an unknown leaf is an error
  naming the valid keys."""
  for path, value in overrides:
    *parents, leaf = path.split(".")
    node = config
    for part in parents:
      if part not in node:
        raise config_util.ConfigError(f"Unknown config section {part!r} in override {path!r}.")
      node = node[part]
    if leaf not in node:
      raise config_util.ConfigError(f"Unknown config leaf {path!r}; valid keys there: "
                                    f"{', '.join(sorted(node.keys()))}.")
    node[leaf] = config_util.typed(node[leaf], value, f"Override {path}")


def variant_config(variant: Variant, partition: Optional[int] = None):
  """The variant's config (its overrides applied), at `partition` when given."""
  config = config_util.load_config(variant.config)
  apply_overrides(config, variant.overrides)
  if partition is not None:
    config.partition = partition
  return config


def _run_or_read(config, workdir: pathlib.Path, label: str) -> dict:
  """results.json of the run in `workdir`: read back when finished (same config), else run."""
  finished = workdir / "results.json"
  if finished.exists():
    workdir_lib.check_same_config(config, workdir)
    return json.loads(finished.read_text())
  print(f"== {label} -> {workdir}", flush=True)
  return run_lib.run(config, workdir)


def run_variant(variant: Variant, partitions: Sequence[int], root) -> list[dict]:
  """results.json of each partition's run (trained here unless already finished)."""
  return [_run_or_read(variant_config(variant, partition),
                       pathlib.Path(root) / variant.name / f"partition{partition}",
                       f"{variant.name} partition {partition}") for partition in partitions]


def run_seeds_variant(variant: Variant, root) -> dict:
  """One variant as one multi-seed run (config.num_seeds, one vmapped program) in root/<name>;
  read back when that workdir already holds its results."""
  config = variant_config(variant)
  return _run_or_read(config, pathlib.Path(root) / variant.name,
                      f"{variant.name} ({config.num_seeds} seeds)")


# The DA-IMRN paper's ablation (its attention modules, interaction and multi-scale blocks).
DA_IMRN_ABLATION = (
    ("full", ()),
    ("no_scam", (("model.use_scam", False),)),
    ("no_sam", (("model.use_sam", False),)),
    ("no_attention", (("model.use_scam", False), ("model.use_sam", False))),
    ("no_interaction", (("model.interact", False),)),
    ("single_scale", (("model.multiscale", False),)),
)


def ablate(base: str, variants, num_seeds: int, root, base_overrides=()) -> tuple[str, dict]:
  """variants: (name, overrides) pairs, each run with num_seeds seeds -> (markdown, summaries).
  base_overrides (the launcher's --config.x=... values) apply to every variant, before its own."""
  summaries, rows = {}, []
  for name, overrides in variants:
    variant = Variant(name, base, tuple(base_overrides) + (("num_seeds", num_seeds),)
                      + tuple(overrides))
    results = run_seeds_variant(variant, root)
    runs = results["runs"] if "runs" in results else [results]
    summaries[name] = dict(summarize(runs), overrides=[list(o) for o in overrides],
                           train_seconds=results["train_seconds"])
    rows.append((name, summaries[name]))
  return format_table(rows), summaries


def summarize(results: Sequence[dict]) -> dict:
  """{'mean': {oa, aa, kappa}, 'std': {...}, 'runs': n}."""
  return dict(run_lib.summarize(results), runs=len(results))


def format_cell(summary: dict, key: str) -> str:
  """'72.65 ± 1.20' (percent) for OA / AA, '0.688 ± 0.012' for kappa."""
  scale, digits = (1, 3) if key == "kappa" else (100, 2)
  return (f"{scale * summary['mean'][key]:.{digits}f} ± {scale * summary['std'][key]:.{digits}f}")


def format_table(rows: Sequence[tuple[str, dict]]) -> str:
  """Markdown: one row per (label, summary) with OA, AA, kappa as mean ± std and the run count."""
  lines = ["| variant | OA % | AA % | kappa | runs |", "|---|---|---|---|---|"]
  lines += [f"| {label} | {format_cell(s, 'oa')} | {format_cell(s, 'aa')} | "
            f"{format_cell(s, 'kappa')} | {s['runs']} |" for label, s in rows]
  return "\n".join(lines)


def leakage_of(workdirs: Sequence[pathlib.Path]) -> float:
  """Mean fraction of test pixels lying inside a training input window of the saved splits."""
  fractions = []
  for workdir in workdirs:
    split = split_files.load_split(pathlib.Path(workdir) / "split.npz")
    inside = audit.coverage(split.train_windows, split.test.shape) & (split.test > 0)
    fractions.append(inside.sum() / max(int(np.sum(split.test > 0)), 1))
  return float(np.mean(fractions))


def compare_protocols(base: str, model_names: Sequence[str], protocols: Sequence[str],
                      partitions: Sequence[int], root, base_overrides=()) -> tuple[str, dict]:
  """Every model under every protocol over the partitions: (markdown table, summaries).

  base_overrides (the launcher's --config.x=... values) apply to every run. Per model: its
  parameters and forward FLOPs per input patch (benchmark.forward_flops), OA / AA / kappa mean ±
  std per protocol, the masked-input control (results.json "control": the pixel models under
  `blocks`, their test inputs read as training inputs are) and the mean training seconds of a
  run. Each protocol's column header
  carries the leakage audit of its splits (its range over the models): the share of test pixels
  inside a training input window (the neighbourhoods under `pixels`; the DA-IMRN windows under
  `blocks`, outside which the pixel models' training inputs are zeroed)."""
  summaries, leakage, rows = {}, {}, []
  for name in model_names:
    row = {}
    for protocol in protocols:
      variant = Variant(f"{name}_{protocol}",
                        config_util.with_options(base, model=name, protocol=protocol),
                        base_overrides)
      results = run_variant(variant, partitions, root)
      row[protocol] = summarize(results)
      if all("control" in r for r in results):
        row[protocol]["control"] = summarize([r["control"] for r in results])
      row[protocol]["train_seconds"] = float(np.mean([r["train_seconds"] for r in results]))
      row.setdefault("num_params", results[0].get("num_params"))
      summaries[variant.name] = row[protocol]
      leakage.setdefault(protocol, {})[name] = leakage_of(
          [pathlib.Path(root) / variant.name / f"partition{k}" for k in partitions])
    config = variant_config(Variant(name, config_util.with_options(base, model=name),
                                    base_overrides))
    row["flops"] = (benchmark.forward_flops(config) if families.is_neural(name) else None)
    summaries[name] = dict(num_params=row["num_params"], forward_flops=row["flops"])
    rows.append((name, row))
  return format_comparison(rows, protocols, leakage), dict(summaries=summaries, leakage=leakage)


def format_comparison(rows, protocols: Sequence[str], leakage: dict) -> str:
  """The comparison's markdown (compare_protocols): one line per model."""
  header = ["model", "parameters", "forward MFLOP / patch"]
  for protocol in protocols:
    low, high = min(leakage[protocol].values()), max(leakage[protocol].values())
    share = f"{100 * low:.1f} %" if f"{low:.3f}" == f"{high:.3f}" else (
        f"{100 * low:.1f}-{100 * high:.1f} % by model")
    header.append(f"{protocol}: OA % / AA % / kappa (test pixels in a training input: {share})")
    if any("control" in row[protocol] for _, row in rows):
      header.append(f"{protocol}, control (test inputs masked as training inputs)")
  header.append("training s / run (" + " / ".join(protocols) + ")")
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for name, row in rows:
    cells = [name, "—" if row["num_params"] is None else f"{row['num_params']:,}",
             "—" if row["flops"] is None else f"{row['flops'] / 1e6:,.2f}"]
    for protocol in protocols:
      summary = row[protocol]
      cells.append(" / ".join(format_cell(summary, k) for k in SUMMARY_KEYS))
      if any("control" in r[protocol] for _, r in rows):
        cells.append(" / ".join(format_cell(summary["control"], k) for k in SUMMARY_KEYS)
                     if "control" in summary else "= test (reads no neighbour / own window)")
    cells.append(" / ".join(f"{row[p]['train_seconds']:,.0f}" for p in protocols))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def write_table(path, table: str, summaries: dict) -> None:
  """The markdown table at `path` and the summaries beside it as .json."""
  path = pathlib.Path(path)
  with fileutil.atomic_path(path) as tmp:
    tmp.write_text(table + "\n")
  fileutil.write_json(path.with_suffix(".json"), summaries)


def parse_variants(texts: Sequence[str]) -> list[tuple[str, tuple]]:
  """['lr3e-4:train.learning_rate=3e-4;train.epochs=50', 'base'] -> [(name, overrides), ...]."""
  variants = []
  for text in texts:
    name, _, rest = text.partition(":")
    if not name:
      raise config_util.ConfigError(f"A variant is NAME:LEAF=VALUE[;...], got {text!r}.")
    variants.append((name, tuple(parse_override(o) for o in rest.split(";") if o.strip())))
  return variants


def table_main(config_flag, make_table, out: Optional[str]) -> None:
  """The body of the table launchers (launch/ablate.py, compare.py): the --config flag's config,
  validated; its file and overrides go to make_table(config_file, overrides) -> (markdown,
  summaries); the table is printed and, with `out`, written (write_table)."""
  validate.validate(config_flag.value)
  table, summaries = make_table(config_flags.get_config_filename(config_flag),
                                tuple(config_flags.get_override_values(config_flag).items()))
  print(table)
  if out:
    write_table(out, table, summaries)
