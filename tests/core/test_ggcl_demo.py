"""The bundled GGCL demo beats its identity baseline on held-back phantom slices; the Siemens chest
kernel pairs (no licence: test-only, never shipped) as an outside check."""

import numpy as np
import pytest

from ctstudio.metrics.ssim import psnr, ssim

MODEL = "ggcl-phantom-ub-ya"


@pytest.fixture(scope="module")
def converter():
    from ctstudio.translation.kernels import KernelConverter

    return KernelConverter.load(MODEL)


@pytest.fixture(scope="module")
def heldout(shared_data):
    """Two of the held-back slices (never trained on) of each kernel, same positions."""
    from ctstudio import checkpoints
    from ctstudio.io import read_volume

    cfg = checkpoints.read_meta(checkpoints.resolve_model(MODEL))["config"]
    d = shared_data / "head-phantom-philips-2kernels"
    out = {}
    for k, f in (("UB", "phantom_UB-std_slices24-55.nii.gz"), ("YA", "phantom_YA-bone_slices24-55.nii.gz")):
        a = read_volume(d / f).array
        held = a[a.shape[0] - cfg["holdout"]:]
        out[k] = held[[0, -1]].astype(np.float32)
    return out


def test_demo_card_is_honest_about_its_data():
    from ctstudio import checkpoints

    meta = checkpoints.read_meta(checkpoints.resolve_model(MODEL))
    card = meta["card"]
    assert meta["kind"] == "ggcl" and meta["config"]["domains"] == ["UB", "YA"]
    assert "demo" in card["summary"].lower() and "BSD-2" in card["data_licence"]
    rows = {r["direction"]: r for r in card["evaluation"]["rows"]}
    assert rows["UB->YA"]["psnr_converted"] > rows["UB->YA"]["psnr_identity"]


@pytest.mark.parametrize("src,dst", [("UB", "YA"), ("YA", "UB")])
def test_demo_beats_identity_on_heldout_slices(converter, heldout, src, dst):
    out = np.rint(converter.convert_slices(heldout[src], dst))
    assert psnr(out, heldout[dst]) > psnr(heldout[src], heldout[dst]) + 0.5
    assert ssim(out, heldout[dst]) > ssim(heldout[src], heldout[dst])
