"""Parenchyma coefficient of variation: closed form, the mask excludes bone and air, real brain CT."""

from __future__ import annotations

import numpy as np
import pytest

from ctstudio.errors import InputError
from ctstudio.metrics import cv


def test_cv_closed_form_and_mask_excludes_bone_and_air():
    rng = np.random.default_rng(0)
    vol = np.full((6, 64, 64), -1000.0)  # air
    vol[:, 8:56, 8:56] = 1200.0  # bone shell
    tissue = rng.normal(40, 6, (6, 40, 40))
    vol[:, 12:52, 12:52] = tissue
    out = cv.parenchyma_cv(vol)
    inner = tissue[:, 1:-1, 1:-1]  # one-voxel in-plane erosion removes the rim
    inner = inner[(inner >= 0) & (inner <= 80)]
    assert out["n_voxels"] == inner.size
    assert out["cv"] == pytest.approx(inner.std() / inner.mean(), rel=1e-9)
    assert out["mean_hu"] == pytest.approx(40, abs=0.5)
    mask = cv.parenchyma_mask(vol)
    assert not mask[vol > 80].any() and not mask[vol < 0].any()


def test_slice_mean_cv_sees_a_brightness_drift():
    rng = np.random.default_rng(1)
    flat = 40 + rng.normal(0, 4, (8, 48, 48))
    drift = flat + np.linspace(-10, 10, 8)[:, None, None]
    assert cv.parenchyma_cv(drift)["slice_mean_cv"] > 5 * cv.parenchyma_cv(flat)["slice_mean_cv"]


def test_noisier_phantom_has_larger_cv():
    from ctstudio.imaging.phantom import head_phantom

    clean = head_phantom(shape=(16, 96, 96), noise_sd=3, seed=0).array
    noisy = head_phantom(shape=(16, 96, 96), noise_sd=15, seed=0).array
    assert cv.parenchyma_cv(noisy)["cv"] > cv.parenchyma_cv(clean)["cv"]


def test_real_head_ct_slice(shared_data):
    """A real non-contrast brain slice (CQ500): the mask holds brain, not skull or air."""
    from ctstudio.io import read_volume

    hu = read_volume(shared_data / "head-ct-cq500-single-slice" / "693_UNCR.dcm").array
    out = cv.parenchyma_cv(hu)
    assert out["n_voxels"] > 10000
    assert 20 < out["mean_hu"] < 50  # grey/white matter
    assert 0.05 < out["cv"] < 0.6


def test_no_parenchyma_is_a_clear_error():
    with pytest.raises(InputError, match="parenchyma range"):
        cv.parenchyma_cv(np.full((4, 32, 32), -1000.0))
