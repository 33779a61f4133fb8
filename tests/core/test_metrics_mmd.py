"""bMMD² against closed forms and a brute-force implementation."""

from __future__ import annotations

import numpy as np
import pytest

from ctstudio.errors import InputError
from ctstudio.imaging.intensity import hu_to_model
from ctstudio.metrics import mmd


def test_identical_sets_give_zero(phantom):
    vols = [phantom.array, phantom.array[::-1].copy()]
    assert mmd.bmmd2(vols, vols)["bmmd2"] == pytest.approx(0.0, abs=1e-9)
    assert mmd.bmmd2(vols, vols, kernel="gaussian")["bmmd2"] == pytest.approx(0.0, abs=1e-9)


def test_linear_bmmd2_is_the_squared_distance_of_batch_means(shared_data):
    """On real CT: linear-kernel MMD² = |mean(x) - mean(y)|² in the [-1, 1] model range."""
    from ctstudio.io import read_volume

    d = shared_data / "head-phantom-philips-2kernels"
    ub = read_volume(d / "phantom_UB-std_slices24-55.nii.gz").array[:, ::8, ::8]
    ya = read_volume(d / "phantom_YA-bone_slices24-55.nii.gz").array[:, ::8, ::8]
    real = [ub[k:k + 4] for k in range(0, 32, 4)]
    fake = [ya[k:k + 4] for k in range(0, 32, 4)]
    out = mmd.bmmd2(real, fake, batch_size=8)
    x = np.stack([hu_to_model(r.astype(np.float32)).ravel() for r in real]).astype(np.float64)
    y = np.stack([hu_to_model(f.astype(np.float32)).ravel() for f in fake]).astype(np.float64)
    assert out["n_batches"] == 1
    assert out["bmmd2"] == pytest.approx(float(((x.mean(0) - y.mean(0)) ** 2).sum()), rel=1e-9)
    assert out["bmmd2"] > 0  # the bone kernel differs from the standard one


def test_gaussian_mmd2_equals_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5)), rng.normal(0.5, 1, size=(9, 5))
    h = 1.7

    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * h * h))

    kxx = np.mean([k(a, b) for a in x for b in x])
    kyy = np.mean([k(a, b) for a in y for b in y])
    kxy = np.mean([k(a, b) for a in x for b in y])
    assert mmd.mmd2_gaussian(x, y, h) == pytest.approx(kxx + kyy - 2 * kxy, abs=1e-12)


def test_gaussian_mmd2_closed_form_for_two_normals():
    """N(m1, s²) vs N(m2, s²), kernel bandwidth h:
    MMD² = 2 h / sqrt(h² + 2 s²) * (1 - exp(-(m1 - m2)² / (2 (h² + 2 s²))))."""
    rng = np.random.default_rng(1)
    s, h, delta = 1.0, 1.0, 1.0
    x = rng.normal(0, s, size=(3000, 1))
    y = rng.normal(delta, s, size=(3000, 1))
    c = h * h + 2 * s * s
    expected = 2 * h / np.sqrt(c) * (1 - np.exp(-delta ** 2 / (2 * c)))
    assert mmd.mmd2_gaussian(x, y, h) == pytest.approx(expected, abs=0.01)


def test_more_different_sets_give_larger_bmmd2(phantom):
    rng = np.random.default_rng(0)
    a = phantom.array.astype(np.float32)
    real = [a + rng.normal(0, 5, a.shape) for _ in range(4)]
    near = [a + 20 + rng.normal(0, 5, a.shape) for _ in range(4)]
    far = [a + 80 + rng.normal(0, 5, a.shape) for _ in range(4)]
    assert mmd.bmmd2(real, near, batch_size=2, n_batches=5)["bmmd2"] < mmd.bmmd2(real, far, batch_size=2, n_batches=5)["bmmd2"]


def test_mismatched_shapes_are_refused():
    with pytest.raises(InputError, match="one shape"):
        mmd.bmmd2([np.zeros((4, 8, 8))], [np.zeros((4, 8, 9))])
    with pytest.raises(InputError, match="kernel"):
        mmd.bmmd2([np.zeros((2, 2))], [np.zeros((2, 2))], kernel="cubic")
