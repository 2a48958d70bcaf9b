"""Registry of hyperspectral scenes: files, .mat keys, bands, class names, hashes, where to get them.

Every public benchmark scene used by the two papers (and the usual companions) is described once
here. A content hash is a sha256 over the array's dtype, shape and C-order little-endian bytes
(`array_hash`), so a re-saved .mat file with a different header still verifies; a ground truth is
hashed as int32 values, so one re-saved with another number type verifies too. Hashes are only
listed for arrays whose values we have seen; `None` means "not verified here" and the loader then
checks shape and band count only. Bundled files (the Indian Pines cube and ground truth, the Pavia
University and Salinas ground truths: 5.8 MB) ship inside the package, so the default config runs
offline and PU / SV splits can be made without downloading anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Optional, Sequence

import numpy as np

GIC = "https://www.ehu.eus/ccwintco/uploads/"


@dataclasses.dataclass(frozen=True)
class ArrayFile:
  """One .mat file holding one array."""
  filename: str
  key: str
  url: str
  sha256: Optional[str]  # content_hash of the array under `key`; None = not verified here.
  bundled: bool = False  # ships inside the package (hsi_jax/data/bundled/).
  class_map: bool = False  # a ground truth: hashed by its values, whatever integer or float type

  def content_hash(self, array: np.ndarray) -> str:
    """array_hash of the array, a class map's taken as int32 (a ground truth re-saved as doubles
    holding the same ids still verifies)."""
    return array_hash(np.asarray(array).astype(np.int32) if self.class_map else array)


@dataclasses.dataclass(frozen=True)
class Scene:
  """Metadata of one scene. `class_names[i]` names ground-truth id `class_ids[i]`."""
  name: str
  title: str
  cube: ArrayFile
  gt: ArrayFile
  shape: tuple[int, int]
  num_bands: int
  class_names: tuple[str, ...]
  rgb_bands: tuple[int, int, int]
  class_ids: Optional[tuple[int, ...]] = None  # raw ids in the gt file; None = 1..C.

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def raw_class_ids(self) -> tuple[int, ...]:
    return self.class_ids or tuple(range(1, self.num_classes + 1))


def array_hash(array: np.ndarray) -> str:
  """sha256 of dtype + shape + C-order little-endian bytes; independent of the file it came from."""
  array = np.asarray(array)
  array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
  digest = hashlib.sha256()
  digest.update(array.dtype.str.encode())
  digest.update(repr(tuple(array.shape)).encode())
  digest.update(array.tobytes())
  return digest.hexdigest()


_IP_CLASSES = (
    "Alfalfa", "Corn-notill", "Corn-mintill", "Corn", "Grass-pasture", "Grass-trees",
    "Grass-pasture-mowed", "Hay-windrowed", "Oats", "Soybean-notill", "Soybean-mintill",
    "Soybean-clean", "Wheat", "Woods", "Buildings-Grass-Trees-Drives", "Stone-Steel-Towers")
_PU_CLASSES = ("Asphalt", "Meadows", "Gravel", "Trees", "Painted metal sheets", "Bare soil",
               "Bitumen", "Self-blocking bricks", "Shadows")
_SV_CLASSES = (
    "Brocoli_green_weeds_1", "Brocoli_green_weeds_2", "Fallow", "Fallow_rough_plow",
    "Fallow_smooth", "Stubble", "Celery", "Grapes_untrained", "Soil_vinyard_develop",
    "Corn_senesced_green_weeds", "Lettuce_romaine_4wk", "Lettuce_romaine_5wk",
    "Lettuce_romaine_6wk", "Lettuce_romaine_7wk", "Vinyard_untrained", "Vinyard_vertical_trellis")
_PC_CLASSES = ("Water", "Trees", "Asphalt", "Self-blocking bricks", "Bitumen", "Tiles", "Shadows",
               "Meadows", "Bare soil")
_KSC_CLASSES = ("Scrub", "Willow swamp", "Cabbage palm hammock", "Cabbage palm/oak hammock",
                "Slash pine", "Oak/broadleaf hammock", "Hardwood swamp", "Graminoid marsh",
                "Spartina marsh", "Cattail marsh", "Salt marsh", "Mud flats", "Water")
_BO_CLASSES = ("Water", "Hippo grass", "Floodplain grasses 1", "Floodplain grasses 2", "Reeds",
               "Riparian", "Firescar", "Island interior", "Acacia woodlands", "Acacia shrublands",
               "Acacia grasslands", "Short mopane", "Mixed mopane", "Exposed soils")

SCENES: dict[str, Scene] = {
    "ip": Scene(
        name="ip", title="Indian Pines (corrected, 200 bands)",
        cube=ArrayFile("Indian_pines_corrected.mat", "indian_pines_corrected",
                       GIC + "6/67/Indian_pines_corrected.mat",
                       "00fa74d610fcbaac008e9ed9d0a590031c982828de74de0ed20ab3db32b4ad98", bundled=True),
        gt=ArrayFile("Indian_pines_gt.mat", "indian_pines_gt", GIC + "c/c4/Indian_pines_gt.mat",
                     "c827d1dc7c7105a77729d0e7dc2d00a1004b42b1c6a9c69a94af2a1433148f12",
                     bundled=True, class_map=True),
        shape=(145, 145), num_bands=200, class_names=_IP_CLASSES, rgb_bands=(43, 21, 11)),
    "pu": Scene(
        name="pu", title="Pavia University",
        cube=ArrayFile("PaviaU.mat", "paviaU", GIC + "e/ee/PaviaU.mat", None),
        gt=ArrayFile("PaviaU_gt.mat", "paviaU_gt", GIC + "5/50/PaviaU_gt.mat",
                     "76d182fb652b21a5591c3702992e8dd685b052d8e091e50936d813760667a94e",
                     bundled=True, class_map=True),
        shape=(610, 340), num_bands=103, class_names=_PU_CLASSES, rgb_bands=(55, 41, 12)),
    "sv": Scene(
        name="sv", title="Salinas Valley (corrected, 204 bands)",
        cube=ArrayFile("Salinas_corrected.mat", "salinas_corrected",
                       GIC + "a/a3/Salinas_corrected.mat", None),
        gt=ArrayFile("Salinas_gt.mat", "salinas_gt", GIC + "f/fa/Salinas_gt.mat",
                     "d4f656e37e33d7d69c1308d779983fb753312b735a80813582eb724bcac89053",
                     bundled=True, class_map=True),
        shape=(512, 217), num_bands=204, class_names=_SV_CLASSES, rgb_bands=(43, 21, 11)),
    "pc": Scene(
        name="pc", title="Pavia Centre",
        cube=ArrayFile("Pavia.mat", "pavia", GIC + "e/e3/Pavia.mat", None),
        gt=ArrayFile("Pavia_gt.mat", "pavia_gt", GIC + "5/53/Pavia_gt.mat", None,
                     class_map=True),
        shape=(1096, 715), num_bands=102, class_names=_PC_CLASSES, rgb_bands=(55, 41, 12)),
    "ksc": Scene(
        name="ksc", title="Kennedy Space Center",
        cube=ArrayFile("KSC.mat", "KSC", GIC + "2/26/KSC.mat", None),
        gt=ArrayFile("KSC_gt.mat", "KSC_gt", GIC + "a/a6/KSC_gt.mat", None,
                     class_map=True),
        shape=(512, 614), num_bands=176, class_names=_KSC_CLASSES, rgb_bands=(43, 21, 11)),
    "bo": Scene(
        name="bo", title="Botswana",
        cube=ArrayFile("Botswana.mat", "Botswana", GIC + "7/72/Botswana.mat", None),
        gt=ArrayFile("Botswana_gt.mat", "Botswana_gt", GIC + "5/58/Botswana_gt.mat", None,
                     class_map=True),
        shape=(1476, 256), num_bands=145, class_names=_BO_CLASSES, rgb_bands=(75, 33, 15)),
}


def display_bands(num_bands: int, wavelengths=None) -> tuple[int, int, int]:
  """(red, green, blue) band indices for a composite: with the bands' wavelengths (nm, or um when
  all are below 100), the bands nearest 640, 550 and 460 nm; without, the registry's choices as
  fractions of the band count -- Indian Pines' (AVIRIS, 0.4-2.5 um) for more than 150 bands, Pavia
  University's (ROSIS, 0.43-0.86 um) otherwise."""
  if wavelengths is not None and len(wavelengths) == num_bands:
    nanometres = np.asarray(wavelengths, np.float64)
    nanometres = nanometres * 1000 if nanometres.max() < 100 else nanometres
    return tuple(int(np.argmin(np.abs(nanometres - target))) for target in (640, 550, 460))
  fractions = (0.215, 0.105, 0.055) if num_bands > 150 else (0.534, 0.398, 0.117)
  return tuple(min(num_bands - 1, int(round(f * num_bands))) for f in fractions)


CUSTOM = "custom"  # config.scene of a user's own files (configs/custom.py; io.scene_of)


def get_scene(name) -> Scene:
  """Looks a scene up by its short name (ip, pu, sv, pc, ksc, bo); a Scene is returned as is."""
  if isinstance(name, Scene):
    return name
  try:
    return SCENES[name.lower()]
  except KeyError:
    raise ValueError(f"Unknown scene {name!r}; known scenes: {', '.join(SCENES)}.") from None


def unknown_ids(labels: np.ndarray, raw_ids: Sequence[int]) -> list[int]:
  """The non-zero ids of `labels` that are not in `raw_ids`, sorted."""
  return sorted(set(np.unique(labels).tolist()) - {0} - set(raw_ids))


def remap_classes(gt: np.ndarray, raw_ids: Sequence[int]) -> np.ndarray:
  """Maps raw ground-truth ids `raw_ids[i]` to i+1 (0 stays unlabelled). Shape kept, int32."""
  raw_ids = list(raw_ids)
  unknown = unknown_ids(gt, raw_ids)
  if unknown:
    raise ValueError(f"Ground truth holds class ids {unknown} that the scene does not list "
                     f"(known ids: {raw_ids}).")
  lookup = np.zeros(max(max(raw_ids), int(gt.max())) + 1, np.int32)
  lookup[raw_ids] = np.arange(1, len(raw_ids) + 1, dtype=np.int32)
  return lookup[gt]
