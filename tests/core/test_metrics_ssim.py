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


# -- clipping and data range pinned by hand and by scikit-image (kill the issue-11 mutants) ----------------
BRAIN = HURange(-10, 70)


def _skimage_ssim(a, b, rng: HURange) -> float:
    """scikit-image's SSIM with our settings, on HU clipped to ``rng`` and shifted to start at 0."""
    from skimage.metrics import structural_similarity

    a = np.clip(np.asarray(a, float), rng.lower, rng.upper) - rng.lower
    b = np.clip(np.asarray(b, float), rng.lower, rng.upper) - rng.lower
    return structural_similarity(a, b, data_range=rng.width, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)


def test_psnr_clips_both_inputs_to_the_stated_range_by_hand():
    """In the brain range [-10, 70]: 200 HU counts as 70 and -300 HU as -10."""
    from skimage.metrics import peak_signal_noise_ratio

    ref = np.full((16, 16), 40.0)
    test = ref.copy()
    test[:, :8] = 200.0   # clipped to 70: |d| = 30
    test[:, 8:] = -300.0  # clipped to -10: |d| = 50
    mse = (30 ** 2 + 50 ** 2) / 2  # 1700
    assert S.psnr(ref, test, BRAIN) == pytest.approx(10 * np.log10(80 ** 2 / mse), abs=1e-12)
    ref_clipped, test_clipped = np.clip(ref, -10, 70), np.clip(test, -10, 70)
    assert S.psnr(ref, test, BRAIN) == pytest.approx(
        peak_signal_noise_ratio(ref_clipped, test_clipped, data_range=80), abs=1e-9)
    out = S.paired_metrics(ref, test, BRAIN)
    assert out["mae_hu"] == pytest.approx(40.0) and out["rmse_hu"] == pytest.approx(np.sqrt(mse))
    # the reference is clipped too: two images that differ only outside the range are identical in it
    a = np.full((16, 16), 100.0)
    b = np.full((16, 16), 900.0)
    assert S.psnr(a, b, BRAIN) == float("inf")
    assert S.psnr(a, b) == pytest.approx(10 * np.log10(4095 ** 2 / 800 ** 2))
    # and the 12-bit default clips at -1024 / 3071
    assert S.psnr(np.full((4, 4), -3000.0), np.full((4, 4), -1024.0)) == float("inf")
    assert S.psnr(np.full((4, 4), 5000.0), np.full((4, 4), 3071.0)) == float("inf")


def test_ssim_in_a_window_matches_scikit_image_on_real_ct(kernel_pair):
    """Real CT has most of its voxels outside [-10, 70] HU: clipping there decides the value."""
    soft, sharp = kernel_pair
    ours = S.ssim(soft, sharp, BRAIN)
    assert ours == pytest.approx(_skimage_ssim(soft, sharp, BRAIN), abs=1e-6)
    assert ours != pytest.approx(S.ssim(soft, sharp), abs=1e-3)  # the window changes the answer
    icnet = HURange(-150, 150)
    assert S.ssim(soft, sharp, icnet) == pytest.approx(_skimage_ssim(soft, sharp, icnet), abs=1e-6)


def test_ssim_is_computed_on_the_shifted_range(kernel_pair):
    """SSIM's luminance term is not shift-invariant: images start at the range's lower end (0)."""
    soft, sharp = (k[:96, :96].astype(float) for k in kernel_pair)
    from skimage.metrics import structural_similarity

    a = np.clip(soft, -1024, 3071) + 1024
    b = np.clip(sharp, -1024, 3071) + 1024
    unshifted = structural_similarity(a - 1024, b - 1024, data_range=4095, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
    ours = S.ssim(soft, sharp)
    assert ours == pytest.approx(_skimage_ssim(soft, sharp, FULL_12BIT), abs=1e-6)
    assert abs(ours - unshifted) > 1e-4


def test_per_slice_psnr_and_ssim_along_z(kernel_pair):
    from skimage.metrics import peak_signal_noise_ratio

    soft, sharp = kernel_pair
    ref = np.stack([soft[150:214, 150:230], soft[200:264, 200:280], soft[300:364, 100:180]])
    test = np.stack([sharp[150:214, 150:230], soft[200:264, 200:280], sharp[300:364, 100:180] + 30])
    for rng in (FULL_12BIT, BRAIN):
        res = S.psnr_ssim_per_slice(ref, test, rng)
        assert res["hu_range"] == [rng.lower, rng.upper] and res["data_range_hu"] == rng.width
        assert len(res["psnr_db"]) == len(res["ssim"]) == 3
        for k in (0, 2):
            r = np.clip(ref[k].astype(float), rng.lower, rng.upper)
            t = np.clip(test[k].astype(float), rng.lower, rng.upper)
            assert res["psnr_db"][k] == pytest.approx(peak_signal_noise_ratio(r, t, data_range=rng.width), abs=1e-9)
            assert res["ssim"][k] == pytest.approx(_skimage_ssim(ref[k], test[k], rng), abs=1e-6)
        assert res["psnr_db"][1] == float("inf") and res["ssim"][1] == pytest.approx(1.0)
        # the volume SSIM is the mean of the slices'; the volume PSNR pools the MSE over all voxels
        assert S.ssim(ref, test, rng) == pytest.approx(np.mean(res["ssim"]))
        rc = np.clip(ref.astype(float), rng.lower, rng.upper)
        tc = np.clip(test.astype(float), rng.lower, rng.upper)
        assert S.psnr(ref, test, rng) == pytest.approx(peak_signal_noise_ratio(rc, tc, data_range=rng.width),
                                                       abs=1e-9)
    one = S.psnr_ssim_per_slice(soft, sharp)  # a 2D image is one slice
    assert one["ssim"] == [pytest.approx(S.ssim(soft, sharp))] and len(one["psnr_db"]) == 1
    with pytest.raises(InputError, match="same shape"):
        S.psnr_ssim_per_slice(ref, test[:2])
    with pytest.raises(InputError, match="dimensions"):
        S.psnr_ssim_per_slice(np.zeros((2, 2, 16, 16)), np.zeros((2, 2, 16, 16)))


def test_ssim2d_refuses_images_smaller_than_the_window_and_takes_integer_images():
    with pytest.raises(InputError, match="at least 11 x 11"):
        S.ssim2d(np.zeros((10, 40)), np.zeros((10, 40)), 4095)
    with pytest.raises(InputError, match="at least 11 x 11"):
        S.ssim2d(np.zeros((40, 10)), np.zeros((40, 10)), 4095)
    with pytest.raises(InputError, match="2D"):
        S.ssim(np.zeros((2, 2, 16, 16)), np.zeros((2, 2, 16, 16)))
    # int16 images (HU shifted to 0..4095) give the float value: no integer overflow in x * x
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4096, (32, 32)).astype(np.int16)
    b = np.clip(a + rng.integers(-300, 300, a.shape), 0, 4095).astype(np.int16)
    expected = S.ssim2d(a.astype(float), b.astype(float), 4095)
    assert S.ssim2d(a, b, 4095) == pytest.approx(expected, abs=1e-12)
    assert S.ms_ssim_reference(np.tile(a, (6, 6)), np.tile(b, (6, 6)), 4095, win=3) == pytest.approx(
        S.ms_ssim_reference(np.tile(a, (6, 6)).astype(float), np.tile(b, (6, 6)).astype(float), 4095, win=3),
        abs=1e-12)


def test_ssim_on_the_smallest_image_matches_scikit_image():
    """11 x 11 is the smallest image (one window, one valid pixel)."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    a = rng.uniform(0, 4095, (11, 11))
    b = np.clip(a + rng.normal(0, 200, a.shape), 0, 4095)
    ref = structural_similarity(a, b, data_range=4095, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert S.ssim2d(a, b, 4095) == pytest.approx(ref, abs=1e-9)


def test_ms_ssim_window_boundary_is_the_one_pytorch_msssim_accepts():
    """pytorch-msssim needs the smaller side > (win - 1) * 16: 160 px is too small for win 11, 161 is not."""
    import torch
    from pytorch_msssim import ms_ssim

    assert S.ms_ssim_window((160, 300)) == 9 and S.ms_ssim_window((161, 300)) == 11
    assert S.ms_ssim_window((33, 33)) == 3
    with pytest.raises(InputError, match="too small"):
        S.ms_ssim_window((32, 32))
    x = torch.rand(1, 1, 160, 160)
    with pytest.raises(AssertionError):
        ms_ssim(x, x, data_range=1.0, win_size=11)
    assert ms_ssim(x, x, data_range=1.0, win_size=9).item() == pytest.approx(1.0, abs=1e-5)


def test_ms_ssim_reference_uses_full_ssim_at_the_coarsest_scale(kernel_pair):
    """A brightness offset changes only the luminance term, which MS-SSIM takes at the last scale."""
    import torch
    from pytorch_msssim import ms_ssim

    soft = kernel_pair[0][100:420, 90:420].astype(float)
    a = np.clip(soft, -1024, 3071) + 1024
    b = np.clip(soft + 400, -1024, 3071) + 1024
    lib = ms_ssim(torch.tensor(a)[None, None].float(), torch.tensor(b)[None, None].float(), data_range=4095).item()
    assert S.ms_ssim_reference(a, b, 4095) == pytest.approx(lib, abs=1e-5)
    assert lib < 0.999


def test_ms_ssim_diversity_reports_its_range_and_progress():
    rng = np.random.default_rng(0)
    imgs = [rng.normal(40, 30, (64, 64)) for _ in range(4)]
    events = []
    res = S.ms_ssim_diversity(imgs, BRAIN, callback=events.append)
    assert res["hu_range"] == [-10, 70] and res["data_range_hu"] == 80 and res["n_pairs"] == 6
    assert res["n_images"] == 4 and res["window"] == 3
    assert events == [{"stage": "ms-ssim", "done": 6, "total": 6}]


def test_ms_ssim_diversity_samples_distinct_pairs():
    """Images A, A, A, B: three pairs score 1 and three score v. Five *distinct* pairs of the six hold
    two or three of the ones, so the mean is (2 + 3v)/5 or (3 + 2v)/5 whatever the seed."""
    rng = np.random.default_rng(0)
    a = rng.normal(40, 300, (64, 64))
    b = a + rng.normal(0, 300, a.shape)
    v = S.ms_ssim_diversity([a, b])["ms_ssim_mean"]
    allowed = [(2 + 3 * v) / 5, (3 + 2 * v) / 5]
    for seed in range(8):
        res = S.ms_ssim_diversity([a, a, a, b], max_pairs=5, seed=seed)
        assert res["n_pairs"] == 5
        assert min(abs(res["ms_ssim_mean"] - m) for m in allowed) < 1e-5, seed
