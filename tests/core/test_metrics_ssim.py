"""PSNR / SSIM / MS-SSIM against closed forms, scikit-image and an independent numpy MS-SSIM."""

from __future__ import annotations

import numpy as np
import pytest

from ctstudio.errors import InputError
from ctstudio.imaging.intensity import FULL_12BIT, HURange
from ctstudio.metrics import ssim as S


@pytest.fixture(scope="module")
def kernel_pair(shared_data):
    """One real chest slice reconstructed with a soft (B30f) and a sharp (B70f) kernel."""
    from ctstudio.io import read_volume

    d = shared_data / "chest-ct-siemens-kernel-pairs"
    return read_volume(d / "test1_B30.mha").array[0], read_volume(d / "test1_B70.mha").array[0]


def test_psnr_of_known_gaussian_noise():
    """Additive N(0, sd) noise on a mid-range image: PSNR = 20 log10(4095 / sd)."""
    rng = np.random.default_rng(0)
    ref = np.full((256, 256), 40.0)
    for sd in (5.0, 20.0, 80.0):
        test = ref + rng.normal(0, sd, ref.shape)
        expected = 20 * np.log10(FULL_12BIT.width / sd)
        assert S.psnr(ref, test) == pytest.approx(expected, abs=0.05)
    assert S.psnr(ref, ref) == float("inf")


def test_psnr_states_and_uses_the_hu_range():
    ref = np.zeros((32, 32))
    test = ref + 8.0
    brain = HURange(-10, 70)
    out = S.paired_metrics(ref, test, brain)
    assert out["data_range_hu"] == 80 and out["hu_range"] == [-10, 70]
    assert out["psnr_db"] == pytest.approx(20 * np.log10(80 / 8))
    assert out["mae_hu"] == pytest.approx(8.0)


def test_ssim_matches_scikit_image_on_real_ct(kernel_pair):
    from skimage.metrics import structural_similarity

    soft, sharp = kernel_pair
    ours = S.ssim(soft, sharp)
    a = np.clip(soft.astype(float), -1024, 3071) + 1024
    b = np.clip(sharp.astype(float), -1024, 3071) + 1024
    ref = structural_similarity(a, b, data_range=4095, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    assert ours == pytest.approx(ref, abs=1e-6)
    assert 0.3 < ours < 0.999  # the sharp kernel is visibly noisier than the soft one
    assert S.ssim(soft, soft) == pytest.approx(1.0)


def test_ssim_of_a_volume_is_the_mean_over_axial_slices(kernel_pair):
    soft, sharp = kernel_pair
    vol_a = np.stack([soft[:128, :128], soft[128:256, :128]])
    vol_b = np.stack([sharp[:128, :128], sharp[128:256, :128]])
    expected = np.mean([S.ssim(vol_a[k], vol_b[k]) for k in range(2)])
    assert S.ssim(vol_a, vol_b) == pytest.approx(expected)


def test_ms_ssim_pytorch_matches_independent_numpy_implementation(kernel_pair):
    import torch
    from pytorch_msssim import ms_ssim

    soft, sharp = (k[100:420, 90:420] for k in kernel_pair)
    a = np.clip(soft.astype(float), -1024, 3071) + 1024
    b = np.clip(sharp.astype(float), -1024, 3071) + 1024
    lib = ms_ssim(torch.tensor(a)[None, None].float(), torch.tensor(b)[None, None].float(), data_range=4095).item()
    ours = S.ms_ssim_reference(a, b, 4095)
    assert ours == pytest.approx(lib, abs=1e-5)
    # odd sizes exercise the padded pooling
    lib_odd = ms_ssim(torch.tensor(a[:201, :189])[None, None].float(), torch.tensor(b[:201, :189])[None, None].float(),
                      data_range=4095, win_size=7).item()
    assert S.ms_ssim_reference(a[:201, :189], b[:201, :189], 4095, win=7) == pytest.approx(lib_odd, abs=1e-5)


def test_ms_ssim_diversity_identical_set_is_one_and_different_set_is_lower(kernel_pair):
    soft, sharp = (k[128:384, 128:384] for k in kernel_pair)
    same = S.ms_ssim_diversity([soft, soft, soft])
    assert same["ms_ssim_mean"] == pytest.approx(1.0, abs=1e-5)
    assert same["n_pairs"] == 3 and same["window"] == 11
    rng = np.random.default_rng(0)
    varied = S.ms_ssim_diversity([soft, sharp, soft + rng.normal(0, 50, soft.shape)])
    assert varied["ms_ssim_mean"] < 0.99


def test_ms_ssim_window_shrinks_for_small_images_and_refuses_tiny_ones():
    assert S.ms_ssim_window((512, 512)) == 11
    assert S.ms_ssim_window((64, 64)) == 3
    with pytest.raises(InputError, match="too small"):
        S.ms_ssim_window((30, 30))


def test_mismatched_inputs_give_clear_errors():
    with pytest.raises(InputError, match="same shape"):
        S.psnr(np.zeros((10, 10)), np.zeros((10, 12)))
    with pytest.raises(InputError, match="one size"):
        S.ms_ssim_diversity([np.zeros((200, 200)), np.zeros((180, 200))])
    with pytest.raises(InputError, match="at least 2"):
        S.ms_ssim_diversity([np.zeros((200, 200))])
