r"""A scene before any run: its summary on the terminal and scene.png (RGB composite, ground truth).

  python launch/show_scene.py --config=configs/ip.py --out=/tmp/ip
  python launch/show_scene.py --config=configs/custom.py:cube=CUBE.mat,gt=GT.mat --out=DIR
"""

from absl import flags
from ml_collections import config_flags

from hsi_jax import cli
from hsi_jax.data import show

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/ip.py.")
_OUT = flags.DEFINE_string("out", None, "Directory for scene.png.")
flags.mark_flags_as_required(["config", "out"])


def main(argv):
  del argv
  print(show.show_scene(_CONFIG.value, _OUT.value))
  print(f"wrote {_OUT.value}/scene.png")


if __name__ == "__main__":
  cli.run_main(main)
