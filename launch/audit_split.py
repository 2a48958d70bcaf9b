r"""Leakage audit: val/test pixels that lie inside some training input window, per class.

  python launch/audit_split.py DIR/split.npz
  python launch/audit_split.py other_paper_masks.mat --patch=27   # train/test maps, 27x27 inputs
"""

from absl import app
from absl import flags

from hsi_jax import cli
from hsi_jax.data import audit

_PATCH = flags.DEFINE_integer("patch", None, "Input patch side around each train pixel (for "
                              "files without train_windows; overrides them when given).")


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("Give one split file: python launch/audit_split.py DIR/split.npz")
  report, num_classes = audit.audit_file(argv[1], _PATCH.value)
  print(audit.format_report(report, [f"class {c}" for c in range(1, num_classes + 1)]))


if __name__ == "__main__":
  cli.run_main(main)
