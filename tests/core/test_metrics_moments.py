"""Moment-based distribution alignment (Korkinof et al.): moments vs scipy, and the overlap
measures on distributions whose overlap is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ctstudio.errors import InputError
from ctstudio.metrics import moments as M


def test_image_moments_match_scipy():
    rng = np.random.default_rng(0)
    img = rng.gamma(2.0, 200.0, (64, 64)) - 1000
    m = M.image_moments(img)
    x = (np.clip(img, -1024, 3071) + 1024) / 4095
    sd = x.std()
    assert m[0] == pytest.approx(x.mean())
    assert m[1] == pytest.approx(x.var())
    assert m[2] == pytest.approx(stats.skew(x.ravel()))
    assert m[3] == pytest.approx(stats.kurtosis(x.ravel(), fisher=False))
    assert m[4] == pytest.approx(stats.moment(x.ravel(), 5) / sd ** 5)
    assert M.image_moments(np.zeros((8, 8))) is None


def test_overlap_measures_on_known_distributions():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 5)), rng.normal(size=(300, 5))
    same_nn = M.knn_neighbour_counts(a, b)
    far_nn = M.knn_neighbour_counts(a, b + 10)
    assert same_nn["knn_total"] == pytest.approx(6, abs=0.5)  # perfect overlap: 3 + 3
    assert same_nn["knn_other_class"] == pytest.approx(3, abs=0.5)
    assert far_nn["knn_total"] == 3 and far_nn["knn_other_class"] == 0
    same_kde = M.kde_coverage(a, b)
    assert same_kde["coverage"] == pytest.approx(0.97, abs=0.04)
    assert M.kde_coverage(a, b + 10)["coverage"] == 0.0
    mi_same = M.mutual_information(a, b)["label_mi"]
    mi_far = M.mutual_information(a, b + 10)["label_mi"]
    assert max(mi_same.values()) < 0.05
    assert min(mi_far.values()) > 0.5


def test_pair_mi_sees_dependent_moments():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 5))
    x[:, 1] = x[:, 0] ** 2 + 0.01 * rng.normal(size=200)  # M2 depends on M1
    mi = M.mutual_information(x, x + rng.normal(0, 0.01, x.shape))
    assert mi["pairs_real"]["M1-M2"] > 0.5
    assert mi["pairs_real"]["M3-M4"] < 0.1


def test_alignment_on_real_ct(shared_data):
    """Chest CT vs itself with mild noise overlaps; chest vs abdomen CT does not."""
    from ctstudio.io import read_volume

    chest = read_volume(shared_data / "chest-ct-philips-bigbore" / "chest_ct_slices038-101.nii.gz").array[:, ::4, ::4]
    abdo = read_volume(shared_data / "abdomen-ct-totalsegmentator-examples" / "example_ct.nii.gz").array[::2]
    rng = np.random.default_rng(0)
    chest_a, chest_b = chest[0::2], chest[1::2] + rng.normal(0, 3, chest[1::2].shape)
    near = M.distribution_alignment([chest_a], [chest_b])
    far = M.distribution_alignment([chest], [abdo])
    assert near["real_moments"].shape == (32, 5)
    assert near["nearest_neighbours"]["knn_total"] > far["nearest_neighbours"]["knn_total"]
    assert near["kde_support"]["coverage"] > far["kde_support"]["coverage"]
    assert max(far["mutual_information"]["label_mi"].values()) > max(near["mutual_information"]["label_mi"].values())


def test_too_few_images_is_a_clear_error():
    with pytest.raises(InputError):
        M.knn_neighbour_counts(np.zeros((3, 5)), np.zeros((10, 5)))
    with pytest.raises(InputError, match="at least 2"):
        M.distribution_alignment([np.zeros((1, 8, 8))], [np.ones((3, 8, 8))])
