"""The bundled cGAN demo denoises a Poisson-degraded held-back slab of the real chest CT."""

import numpy as np
import pytest

from ctstudio.metrics.ssim import psnr, ssim
from ctstudio.translation.cgan import CGANModel, degrade

MODEL = "cgan-chest-denoise"


@pytest.fixture(scope="module")
def model():
    return CGANModel.load(MODEL)


@pytest.fixture(scope="module")
def slab(shared_data):
    from ctstudio.io import read_volume

    a = read_volume(shared_data / "chest-ct-philips-bigbore" / "chest_ct_slices038-101.nii.gz").array
    return a[-24:, 200:296, 180:340].astype(np.float32)  # held back: the last 24 slices, heart and lung


def test_demo_denoises_better_than_the_degraded_input(model, slab):
    assert model.task == "denoise" and model.block == 32
    noisy = degrade(slab, model.degradation, np.random.default_rng(7))
    out = np.rint(model.run_volume(noisy, overlap=8))
    assert psnr(out, slab) > psnr(noisy, slab) + 2.0
    assert ssim(out, slab) > ssim(noisy, slab) + 0.05
    # it denoises, it does not blur away the anatomy: the mean stays, the error to the clean CT falls
    assert abs(out.mean() - slab.mean()) < 20
    assert np.abs(out - slab).mean() < 0.6 * np.abs(noisy - slab).mean()


def test_card_records_the_normalisation_and_the_evaluation(model):
    from ctstudio import checkpoints

    meta = checkpoints.read_meta(checkpoints.resolve_model(MODEL))
    assert meta["config"]["hu_range"] == {"lower": -1024.0, "upper": 3071.0, "name": ""}
    rows = meta["card"]["evaluation"]["rows"]
    assert rows[1]["psnr"] > rows[0]["psnr"]  # cGAN output vs the degraded input, held-back data
    assert "Apache-2.0" in meta["card"]["data_licence"] and "demo" in meta["card"]["summary"].lower()
