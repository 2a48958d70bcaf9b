"""The split generator on the real IP, PU and SV ground-truth maps."""

import numpy as np
import scipy.io
import pytest

from hsi_jax import config_util
from hsi_jax.data import audit, split_sources, splits

from conftest import REPO

# A module-scoped fixture builds its inputs once: under pytest-xdist (README) one worker runs them all.
pytestmark = pytest.mark.xdist_group("splits")

SCENES = ("ip", "pu", "sv")
# Mean per-class train / val pixels of the 5 official partitions (docs/decisions.md, "IP
# partition" and "PU and SV partitions").
OFFICIAL_MEANS = {
    "ip": ([7.6, 159.6, 97.6, 29.4, 56.2, 87.0, 7.2, 56.8, 4.6, 122.8, 259.2, 76.4, 26.6, 146.0,
            39.6, 11.2],
           [7.8, 164.0, 91.0, 24.8, 52.2, 74.0, 8.6, 55.2, 3.4, 123.8, 245.6, 63.6, 31.4, 134.6,
            51.0, 13.4]),
    "pu": ([457.0, 1116.8, 139.8, 195.0, 91.4, 299.0, 86.2, 272.6, 63.6],
           [381.6, 1332.4, 133.4, 99.2, 97.6, 366.4, 121.2, 164.2, 62.6]),
    "sv": ([77.6, 137.6, 77.6, 52.8, 102.0, 156.4, 142.8, 407.8, 225.8, 116.6, 43.4, 75.2, 36.2,
            44.2, 252.4, 68.8],
           [128.4, 90.4, 119.0, 49.0, 118.6, 147.8, 122.8, 346.0, 275.0, 129.0, 43.6, 116.0, 40.8,
            47.0, 247.2, 41.6]),
}


def config_for(scene, arg=None):
  return config_util.load_config(str(REPO / "configs" / f"{scene}.py") + (f":{arg}" if arg else ""))


@pytest.fixture(scope="module")
def block_splits():
  """Five partitions (seeds 1..5) per scene, as the paper protocol uses them."""
  return {scene: [split_sources.split_from_config(config_for(scene), seed)[0] for seed in range(1, 6)]
          for scene in SCENES}


def painted(windows, shape):
  """(H, W) bool: every pixel of every half-open (row0, col0, row1, col1) window, painted one
  window at a time -- the leakage audit's coverage computed without audit.coverage."""
  covered = np.zeros(shape, bool)
  for r0, c0, r1, c1 in np.asarray(windows).reshape(-1, 4).tolist():
    assert 0 <= r0 < r1 <= shape[0] and 0 <= c0 < c1 <= shape[1], (r0, c0, r1, c1)
    covered[r0:r1, c0:c1] = True
  return covered


def around_pixels(train, patch):
  """painted() of the patch x patch neighbourhood (centre at (patch - 1) // 2, clipped to the
  scene) of every train pixel, computed pixel by pixel."""
  covered = np.zeros(train.shape, bool)
  before = (patch - 1) // 2
  for row, col in np.argwhere(train > 0).tolist():
    covered[max(row - before, 0):row - before + patch, max(col - before, 0):col - before + patch] = True
  return covered


def expected_report(covered, labels, num_classes):
  """audit.audit's entry for one evaluated map, counted class by class over the covered pixels."""
  inside = [int(np.count_nonzero(covered & (labels == c))) for c in range(1, num_classes + 1)]
  total = [int(np.count_nonzero(labels == c)) for c in range(1, num_classes + 1)]
  return dict(inside_training_windows=inside, total=total, inside_total=sum(inside),
              total_pixels=sum(total), fraction=sum(inside) / max(sum(total), 1))


def check_consistent(split, gt):
  maps = [split.train, split.leaked, split.val, split.test]
  member = sum((m > 0).astype(int) for m in maps)
  assert member.max() <= 1, "a pixel is in two sets"
  for m in maps:
    assert np.all((m == 0) | (m == gt)), "a set disagrees with the ground truth"
  assert not np.any(member[gt == 0]), "an unlabelled pixel is in a set"


@pytest.mark.parametrize("scene", SCENES)
def test_blocks_sets_disjoint_and_leakage_free(scene, block_splits, ground_truths):
  gt = ground_truths[scene].gt
  config = config_for(scene)
  p, (lo, hi) = config.split.patch, config.split.accept
  for split in block_splits[scene]:
    check_consistent(split, gt)
    covered = painted(split.train_windows, gt.shape)
    np.testing.assert_array_equal(audit.coverage(split.train_windows, gt.shape), covered)
    assert not np.any(covered & ((split.val > 0) | (split.test > 0)))
    num_classes = ground_truths[scene].num_classes
    report = audit.audit(split.train_windows, {"val": split.val, "test": split.test}, num_classes)
    assert report["val"]["inside_total"] == 0 and report["test"]["inside_total"] == 0
    assert report == {name: expected_report(covered, labels, num_classes)
                      for name, labels in (("val", split.val), ("test", split.test))}
    # Every training input window is p x p inside the scene and carries labels of its own (at
    # most k_keep, each the ground truth of a train or leaked pixel).
    w = split.train_windows
    assert np.all(w[:, 2] - w[:, 0] == p) and np.all(w[:, 3] - w[:, 1] == p)
    assert w.min() >= 0 and np.all(w[:, 2] <= gt.shape[0]) and np.all(w[:, 3] <= gt.shape[1])
    labels = split.train_window_labels
    assert labels.shape == (len(w), p, p) and labels.dtype == np.int32
    training_region = (split.train > 0) | (split.leaked > 0)
    for (r0, c0, r1, c1), window_labels in zip(w, labels):
      assert 0 < np.count_nonzero(window_labels) <= config.split.k_keep
      labelled = window_labels > 0
      assert np.all(window_labels[labelled] == gt[r0:r1, c0:c1][labelled])
      assert np.all(training_region[r0:r1, c0:c1][labelled])
    assert set(np.unique(split.train_flips)) <= {0, 1}
    assert len(split.train_flips) == len(w)
    # Val windows hold val pixels only (plus context that is not test).
    for r0, c0, r1, c1 in split.val_windows:
      assert np.any(split.val[r0:r1, c0:c1] > 0)
    # Test tiles: the p x p grid from (0, 0); every test pixel lies in exactly one tile.
    t = split.test_tiles
    assert np.all(t[:, :2] % p == 0) and np.all(t[:, 2:] - t[:, :2] == p)
    tiled = painted(t, gt.shape)
    np.testing.assert_array_equal(audit.coverage(t, gt.shape), tiled)
    assert np.all(tiled[split.test > 0])
    assert len({(r0, c0) for r0, c0, _, _ in t.tolist()}) == len(t)  # tiles do not overlap
    # Accept bounds and class presence.
    assert lo <= np.count_nonzero(split.train) <= hi
    assert lo <= np.count_nonzero(split.val) <= hi
    assert set(np.unique(split.train)) - {0} == set(np.unique(gt)) - {0}


@pytest.mark.parametrize("scene", SCENES)
def test_blocks_close_to_official_partitions(scene, block_splits, ground_truths):
  num_classes = ground_truths[scene].num_classes
  counts = [s.class_counts(num_classes) for s in block_splits[scene]]
  train = np.mean([c["train"] for c in counts], axis=0)
  val = np.mean([c["val"] for c in counts], axis=0)
  official_train, official_val = map(np.array, OFFICIAL_MEANS[scene])
  assert np.all(np.abs(train - official_train) <= np.maximum(0.4 * official_train, 8)), train
  assert np.corrcoef(train, official_train)[0, 1] > 0.98
  assert abs(val.sum() - official_val.sum()) <= 0.05 * official_val.sum()
  if scene != "sv":  # SV draws 1-4 val blocks per class: per-class val is too noisy to compare.
    assert np.all(np.abs(val - official_val) <= np.maximum(0.6 * official_val, 10)), val
    assert np.corrcoef(val, official_val)[0, 1] > 0.97


# Means over the official shipped partitions IP_1..IP_5 (made with k_keep 8, 0.15, 0.06).
OFFICIAL_IP_TOTALS = dict(train_windows=884.8, leaked=3318.4, test=4550.6, train=1187.8,
                          val=1144.4)


def test_ip_defaults_match_official_partition_totals(block_splits):
  ours = [dict(train_windows=len(s.train_windows), leaked=np.count_nonzero(s.leaked),
               test=np.count_nonzero(s.test), train=np.count_nonzero(s.train),
               val=np.count_nonzero(s.val)) for s in block_splits["ip"]]
  for name, official in OFFICIAL_IP_TOTALS.items():
    mean = np.mean([o[name] for o in ours])
    assert abs(mean - official) <= 0.04 * official, (name, mean, official)


def test_window_labels_are_each_blocks_own(block_splits, ground_truths):
  """Where train blocks overlap, a pixel kept by one block and leaked by a later one is still
  supervised in the first block's windows: labels that the final train map does not hold."""
  gt = ground_truths["ip"].gt
  for split in block_splits["ip"]:
    final = splits.map_window_labels(split.train, split.train_windows, 4)
    block = split.train_window_labels
    rows = np.broadcast_to(split.train_windows[:, 0, None, None] + np.arange(4)[None, :, None],
                           block.shape)
    cols = np.broadcast_to(split.train_windows[:, 1, None, None] + np.arange(4)[None, None, :],
                           block.shape)
    np.testing.assert_array_equal(final, split.train[rows, cols])  # the final-map rule
    only_block = (block > 0) & (final == 0)
    assert only_block.any()
    # Those pixels are leaked in the final maps, never val or test.
    assert np.all(split.leaked[rows[only_block], cols[only_block]] == gt[rows, cols][only_block])
    distinct_block = np.unique((rows * gt.shape[1] + cols)[block > 0]).size
    distinct_final = np.unique((rows * gt.shape[1] + cols)[final > 0]).size
    assert distinct_block > distinct_final


def test_same_seed_same_split_different_seed_differs(ground_truths):
  config = config_for("pu")
  a = split_sources.split_from_config(config, 3)[0]
  b = split_sources.split_from_config(config, 3)[0]
  c = split_sources.split_from_config(config, 4)[0]
  assert a.content_hash() == b.content_hash()
  for name, array in a.arrays().items():
    np.testing.assert_array_equal(array, b.arrays()[name])
  assert a.content_hash() != c.content_hash()
  assert not np.array_equal(a.train, c.train)


def test_pixels_protocol_exact_counts(ground_truths):
  gt = ground_truths["pu"].gt
  params = splits.PixelsParams(patch=27, per_class=100, val_per_class=100)
  split = splits.make_split(gt, 9, seed=1, protocol="pixels", params=params)
  check_consistent(split, gt)
  counts = split.class_counts(9)
  assert counts["train"] == [100] * 9 and counts["val"] == [100] * 9
  assert counts["test"] == (np.bincount(gt.ravel())[1:] - 200).tolist()
  assert len(split.train_windows) == 900 and np.all(split.train_flips == -1)
  by_fraction = splits.make_split(gt, 9, 1, "pixels", splits.PixelsParams(27, fraction=0.1))
  n = np.bincount(gt.ravel())[1:]
  assert by_fraction.class_counts(9)["train"] == [round(0.1 * k) for k in n]
  assert by_fraction.class_counts(9)["val"] == [0] * 9


def test_pixels_protocol_small_classes_capped(ground_truths):
  gt = ground_truths["ip"].gt
  split = split_sources.split_from_config(config_for("ip", "protocol=pixels"), 1)[0]
  counts = split.class_counts(16)
  n = np.bincount(gt.ravel())[1:]
  for c in range(16):
    if n[c] >= 300:
      assert counts["train"][c] == 100 and counts["val"][c] == 100
    else:
      assert counts["train"][c] <= n[c] // 2 and counts["test"][c] > 0
  assert split.info["capped_classes"] == [c + 1 for c in range(16) if n[c] < 300]


def test_pixels_protocol_leakage_is_reported(ground_truths):
  gt = ground_truths["pu"].gt
  split = splits.make_split(gt, 9, 1, "pixels", splits.PixelsParams(27, per_class=100,
                                                                     val_per_class=100))
  report = audit.audit(split.train_windows, {"val": split.val, "test": split.test}, 9)
  # The training inputs are the 27x27 patches around the 900 train pixels, painted here one by one.
  covered = around_pixels(split.train, 27)
  np.testing.assert_array_equal(painted(split.train_windows, gt.shape), covered)
  np.testing.assert_array_equal(audit.coverage(split.train_windows, gt.shape), covered)
  assert report == {"val": expected_report(covered, split.val, 9),
                    "test": expected_report(covered, split.test, 9)}
  # 900 overlapping 27x27 patches cover a large share of PU's test pixels.
  assert report["test"]["fraction"] > 0.3
  assert report["test"]["inside_total"] == int(np.count_nonzero(covered & (split.test > 0)))
  # A user's own masks (no windows): the same figure from train/test maps and a patch size.
  masks = audit.windows_around_mask(split.train, 27)
  assert audit.audit(masks, {"test": split.test}, 9) == {"test": report["test"]}


def test_unreachable_bounds_name_the_bounds_and_closest(ground_truths):
  params = splits.BlocksParams(block=6, patch=4, pixel_ratio=0.135, val_ratio=0.054, k_keep=9,
                               accept=(5000, 5100), max_attempts=5)
  with pytest.raises(splits.SplitError, match=r"\[5000, 5100\].*Closest: attempt \d+ with train "
                     r"\d+, val \d+"):
    splits.make_split(ground_truths["ip"].gt, 16, 1, "blocks", params)


def test_scene_smaller_than_block():
  gt = np.ones((5, 40), np.int32)
  params = splits.BlocksParams(6, 4, 0.1, 0.1, 9, (1, 100))
  with pytest.raises(splits.SplitError, match="smaller than one 6x6 block"):
    splits.make_split(gt, 1, 1, "blocks", params)


def test_gt_without_labels():
  with pytest.raises(splits.SplitError, match="no labelled pixel"):
    splits.make_split(np.zeros((20, 20), np.int32), 2, 1, "pixels",
                      splits.PixelsParams(5, per_class=3))


def test_pixels_needs_exactly_one_of_count_and_fraction(ground_truths):
  with pytest.raises(splits.SplitError, match="exactly one of split.per_class"):
    splits.make_split(ground_truths["ip"].gt, 16, 1, "pixels",
                      splits.PixelsParams(5, per_class=10, fraction=0.1))


def test_unknown_config_option_lists_valid_ones():
  with pytest.raises(config_util.ConfigError, match=r"Unknown config option 'protocl'.*protocol"):
    config_for("ip", "protocl=pixels")
  with pytest.raises(config_util.ConfigError, match="valid: blocks, pixels"):
    config_for("ip", "protocol=random")


def test_audit_of_masks_brought_from_another_paper(tmp_path, ground_truths):
  gt = ground_truths["pu"].gt
  split = splits.make_split(gt, 9, 2, "pixels", splits.PixelsParams(27, per_class=50))
  scipy.io.savemat(tmp_path / "masks.mat", {"train": split.train, "test": split.test})
  report, num_classes = audit.audit_file(tmp_path / "masks.mat", patch=27)
  assert num_classes == 9 and set(report) == {"test"}
  expected = expected_report(around_pixels(split.train, 27), split.test, 9)
  assert report["test"] == expected and expected["inside_total"] > 0
  with pytest.raises(ValueError, match="give the network's input patch size"):
    audit.audit_file(tmp_path / "masks.mat")
