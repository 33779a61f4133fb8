"""Outside check on the Siemens chest slice reconstructed with B10f/B30f/B50f/B70f (Choe et al. 2019).

These four files have NO licence: they are test-only data, read from ../shared/data, never copied into
resources/ or a model. The demo was trained on a Philips head phantom (UB soft, YA bone), so it is not
expected to reproduce Siemens kernels (it does not: PSNR to the real B50/B70 does not improve); what must
carry over is the direction: converting to YA
sharpens (more high-frequency energy, as B30 -> B50 -> B70 does), converting to UB smooths, and the
anatomy survives (the output stays close to its input).
"""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from ctstudio.metrics.ssim import psnr


def _hf(a):
    return float(np.abs(a - gaussian_filter(a, (0, 1, 1))).mean())


@pytest.fixture(scope="module")
def siemens(shared_data):
    from ctstudio.io import read_volume

    d = shared_data / "chest-ct-siemens-kernel-pairs"
    return {k: read_volume(d / f"test1_{k}.mha").array.astype(np.float32) for k in ("B10", "B30", "B50", "B70")}


def test_siemens_kernels_order_by_sharpness(siemens):
    hf = [_hf(siemens[k]) for k in ("B10", "B30", "B50", "B70")]
    assert hf == sorted(hf) and hf[-1] > 4 * hf[0]
    assert psnr(siemens["B30"], siemens["B50"]) > psnr(siemens["B30"], siemens["B70"])


def test_demo_sharpens_and_smooths_in_the_kernel_direction_on_another_scanner(siemens):
    from ctstudio.translation.kernels import KernelConverter

    conv = KernelConverter.load("ggcl-phantom-ub-ya")
    b30 = siemens["B30"]
    sharp = np.rint(conv.convert_slices(b30, "YA"))
    soft = np.rint(conv.convert_slices(b30, "UB"))
    assert _hf(sharp) > 1.15 * _hf(b30) > 1.15 * _hf(soft)
    # the anatomy is kept (the images stay within ~33 dB of their input); the demo does NOT make B30
    # measurably closer to the real B50/B70 (another scanner and body part): the direction transfers,
    # the calibration does not
    assert psnr(sharp, b30) > 30 and psnr(soft, b30) > 30
    assert abs(sharp.mean() - b30.mean()) < 15
