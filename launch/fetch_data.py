r"""Downloads and verifies a scene's cube and ground truth into the data directory.

  python launch/fetch_data.py --scene=pu            # into $HSI_DATA_DIR or ~/.cache/hsi_jax
  python launch/fetch_data.py --scene=sv --root=/data/hsi
"""

from absl import flags

from hsi_jax import cli
from hsi_jax.data import fetch, scenes

_SCENE = flags.DEFINE_enum("scene", None, list(scenes.SCENES), "Scene to download.")
_ROOT = flags.DEFINE_string("root", None, "Data directory (default: HSI_DATA_DIR, else the cache).")
_BASE_URL = flags.DEFINE_string("base_url", None, "Mirror to download from instead of the "
                                "registry's addresses (file:// works).")
flags.mark_flag_as_required("scene")


def main(argv):
  del argv
  fetch.fetch_scene(_SCENE.value, _ROOT.value, _BASE_URL.value)


if __name__ == "__main__":
  cli.run_main(main)
