r"""Trains and evaluates one run: python launch/train.py --config=configs/ip.py --workdir=DIR

Any config leaf can be overridden (--config.train.epochs=5, --config.partition=3). Starting again
with the same --workdir resumes an interrupted run; a finished workdir is refused.
--config.num_seeds=5 trains five seeds in one vmapped program (hsi_jax/run.py).

Multi-host (every process runs this same command; only process 0 writes files):
  srun python launch/train.py --multihost --config=... --workdir=/shared/dir    # SLURM GPU cluster
  python launch/train.py --multihost --config=... --workdir=gs://...              # each TPU-pod VM
  python launch/train.py --multihost --coordinator_address=host0:1234 --num_processes=2 \
      --process_id=0 ...                                                          # explicit
"""

from absl import flags
from ml_collections import config_flags

from hsi_jax import cli, parallel

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/ip.py.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for this run's files.")
_MULTIHOST = flags.DEFINE_bool("multihost", False,
                               "Call jax.distributed.initialize() before anything else.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0 (multi-host; default: detected).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes (default: detected).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process (default: detected).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  if _MULTIHOST.value:
    parallel.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  from hsi_jax import run  # noqa: PLC0415  (after initialize: nothing may touch JAX first)
  results = run.run(_CONFIG.value, _WORKDIR.value)  # validates the config before anything else
  print(f"{run.summary_line(results)} -> {_WORKDIR.value}/results.json")


if __name__ == "__main__":
  cli.run_main(main)
