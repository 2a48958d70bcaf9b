r"""Makes the inference bundles of a run finished before runs wrote them, from its checkpoint.

  python launch/export_bundle.py --workdir=W      # then: python launch/predict.py --workdir=W ...

Each run's best state comes from W/checkpoints/latest, its preprocessing is fitted again on its
saved split.npz (hsi_jax/run.py, export_bundles).
"""

from absl import flags

from hsi_jax import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory of a finished run.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  from hsi_jax import run  # noqa: PLC0415  (flags first: --help stays fast)
  for path in run.export_bundles(_WORKDIR.value):
    print(f"wrote {path}")


if __name__ == "__main__":
  cli.run_main(main)
