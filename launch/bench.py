r"""Prints one JSON line of benchmark figures for a config.

  python launch/bench.py --config=configs/pu.py --steps=10            # train step + inference
  python launch/bench.py --config=configs/ip.py --config.model.fast_conv=False   # plain 3-D convs
  python launch/bench.py --config=configs/pc.py:model=ssan            # SSAN: 5,434,176 parameters
  python launch/bench.py --config=configs/ip.py --mode=profile --loop_steps=4   # op by op
  python launch/bench.py --config=configs/ip.py --mode=epoch       # one real epoch + validation
  python launch/bench.py --config=configs/ip.py:runlocal --mode=seeds --num_seeds=5   # vmap vs loop
  python launch/bench.py --config=configs/pu.py --mode=split          # split time (gt only)
  python launch/bench.py --config=configs/ip.py --mode=inference      # full-scene map time
  python launch/bench.py --config=configs/ip.py:runlocal --mode=drift --steps=112 [--ulp]
                         # per-step losses of epoch 1: compare 1 vs N devices, or with --ulp
  python launch/bench.py --config=configs/ip.py --mode=ceiling     # the device's f32 matmul GFLOP/s
  XLA_FLAGS=--xla_force_host_platform_device_count=8 python launch/bench.py ...   # N devices
"""

import json

from absl import flags
from ml_collections import config_flags

from hsi_jax import benchmark, cli, compile_cache

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/pu.py.")
_MODE = flags.DEFINE_enum("mode", "step",
                          ["step", "profile", "epoch", "seeds", "split", "inference", "drift",
                           "ceiling"],
                          "What to time (profile: op by op; drift: per-step losses of the first "
                          "epoch, not a time).")
_ULP = flags.DEFINE_bool("ulp", False, "drift mode: initial parameters moved up by one ULP.")
_STEPS = flags.DEFINE_integer("steps", 10, "step mode: timed calls after warm-up (median).")
_LOOP_STEPS = flags.DEFINE_integer("loop_steps", 8, "step / profile modes: train steps per call.")
_TOP = flags.DEFINE_integer("top", 25, "profile mode: ops listed, the longest first.")
_INFER_BATCH = flags.DEFINE_integer("infer_batch", 256, "step mode: inference batch.")
_NUM_SEEDS = flags.DEFINE_integer("num_seeds", 5, "seeds mode: seeds vmapped vs run in a row.")
_ROUNDS = flags.DEFINE_integer("rounds", 2,
                               "seeds / epoch modes: timed rounds (epochs for DA-IMRN) after one warm-up.")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  config = _CONFIG.value
  compile_cache.enable(config.compile_cache)
  if _MODE.value == "step":
    figures = benchmark.benchmark(config, steps=_STEPS.value, infer_batch=_INFER_BATCH.value,
                                  loop_steps=_LOOP_STEPS.value)
  elif _MODE.value == "profile":
    figures = benchmark.profile_step(config, _LOOP_STEPS.value, _TOP.value)
  elif _MODE.value == "epoch":
    figures = benchmark.benchmark_epoch(config, _ROUNDS.value)
  elif _MODE.value == "seeds":
    figures = benchmark.benchmark_seeds(config, _NUM_SEEDS.value, _ROUNDS.value)
  elif _MODE.value == "split":
    figures = benchmark.benchmark_split(config)
  elif _MODE.value == "inference":
    figures = benchmark.benchmark_inference(config)
  elif _MODE.value == "ceiling":
    figures = benchmark.matmul_ceiling()
  else:
    figures = benchmark.step_losses(config, _STEPS.value, _ULP.value)
  print(json.dumps(figures))


if __name__ == "__main__":
  cli.run_main(main)
