"""Explicit downloads of scene files into the data directory (never automatic).

Each file is streamed to a temporary name, checked (readable .mat holding the registry's key and,
where the registry knows it, the content hash), then renamed into place.
"""

from __future__ import annotations

import pathlib
import shutil
import urllib.request
from typing import Callable, Optional

from hsi_jax import fileutil
from hsi_jax.data import io, scenes as scenes_lib


def fetch_scene(name: str, root: Optional[str] = None, base_url: Optional[str] = None,
                log: Callable[[str], None] = print) -> list[pathlib.Path]:
  """Downloads the cube and ground truth of scene `name` into io.data_dir(root).

  `base_url` replaces the registry's address (a mirror, or a local `file://` folder in tests); a
  file already present and verified is kept. Returns the paths of both files.
  """
  scene = scenes_lib.get_scene(name)
  target = io.data_dir(root)
  paths = []
  for array_file in (scene.cube, scene.gt):
    path = target / array_file.filename
    if path.is_file() and _verified(path, array_file):
      log(f"{path}: present, verified")
    else:
      url = base_url.rstrip("/") + "/" + array_file.filename if base_url else array_file.url
      log(f"{path}: downloading {url}")
      with fileutil.atomic_path(path) as tmp:
        with urllib.request.urlopen(url) as response, open(tmp, "wb") as out:
          shutil.copyfileobj(response, out)
        if not _verified(tmp, array_file, raise_errors=True):
          raise io.DataError(f"{url}: downloaded file failed verification.")
      log(f"{path}: verified" + ("" if array_file.sha256 else
                                 " (readable; no content hash registered for this array)"))
    paths.append(path)
  return paths


def _verified(path, array_file: scenes_lib.ArrayFile, raise_errors: bool = False) -> bool:
  try:
    array = io.read_mat_array(path, array_file.key)
  except (io.DataError, OSError):
    if raise_errors:
      raise
    return False
  if array_file.sha256 is None:
    return True
  digest = array_file.content_hash(array)
  if digest != array_file.sha256 and raise_errors:
    raise io.DataError(f"{path}: content hash {digest} does not match the registry's "
                       f"{array_file.sha256} for {array_file.filename}.")
  return digest == array_file.sha256
