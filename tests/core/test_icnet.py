"""IC-Net calibration on real CT, against the histogram-matching baseline."""

import numpy as np
import pytest
import torch

from ctstudio.diffusion.calibrate import ICNetCalibrator, calibrate_volume, histogram_match
from ctstudio.imaging.intensity import intensity_drift as intensity_shift
from ctstudio.imaging.intensity import intensity_drift_hu as shift_hu


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def headsq_pair(shared_data):
    """Two adjacent real slices of the headsq CT (raw values - 1024 = approximate HU)."""
    from ctstudio.io import read_volume

    v = read_volume(shared_data / "head-ct-vtk-headsq" / "headsq_64x64x93_raw-values.nii.gz")
    a = v.array.astype(np.float32) - 1024.0
    return a[40], a[41]


def test_intensity_shift_is_the_papers_formula():
    x = np.array([[[-1.0, 0.0, 0.5, 0.1]]], np.float32)
    out = intensity_shift(x, 1.2)
    m = x.mean()
    assert np.allclose(out, ((x - m) * 1.2 + m).clip(-1, 1))
    assert np.allclose(intensity_shift(x, 1.0), x)


@pytest.mark.parametrize("mu", [0.75, 1.25])
def test_demo_icnet_lowers_the_mae_of_a_shifted_real_slice(headsq_pair, mu):
    prior, x = headsq_pair
    shifted = shift_hu(x, mu)
    roi = (x > -150) & (x < 150)
    before = np.abs(shifted - x)[roi].mean()
    cal = ICNetCalibrator.from_checkpoint()  # the bundled demo IC-Net
    after = np.abs(cal(shifted, prior) - x)[roi].mean()
    assert before > 8  # the drift is visible in a soft-tissue window
    assert after < 0.9 * before, (before, after)
    hist = np.abs(histogram_match(shifted, prior) - x)[roi].mean()
    print(f"mu={mu}: MAE HU before {before:.1f}, IC-Net {after:.1f}, histogram matching {hist:.1f}")


def test_calibration_changes_only_roi_pixels_and_keeps_shape(headsq_pair):
    prior, x = headsq_pair
    cal = ICNetCalibrator.from_checkpoint()
    out = cal(shift_hu(x, 1.2), prior)
    outside = (x <= -150) | (x >= 150)
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.array_equal(out[outside], shift_hu(x, 1.2)[outside])
    with pytest.raises(Exception, match="two 2D slices"):
        cal(x, prior[:10])


def test_icnet_works_on_sizes_it_was_not_trained_on():
    cal = ICNetCalibrator.from_checkpoint()
    g = np.full((50, 37), 40.0, np.float32)
    assert cal(g, g).shape == (50, 37)


def test_calibrate_volume_keeps_the_anchor_slice_and_records_provenance(sample_path):
    from ctstudio.io import read_volume

    vol = read_volume(sample_path)
    sub = vol.with_array(vol.array[30:36].copy())
    out = calibrate_volume(sub, histogram_match, label="histogram matching")
    # inferior direction: the most superior slice (highest index here) is the anchor
    assert np.array_equal(out.array[-1], sub.array[-1])
    assert "histogram matching" in out.provenance.steps[-1]
    assert out.shape == sub.shape
