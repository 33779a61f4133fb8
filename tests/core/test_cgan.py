"""cGAN tasks: degradations, augmentation, normalisation round trip, whole-volume inference."""

import numpy as np
import pytest

from ctstudio.errors import InputError
from ctstudio.imaging.intensity import FULL_12BIT, hu_to_model, model_to_hu
from ctstudio.translation import cgan


def test_poisson_noise_has_the_expected_strength():
    rng = np.random.default_rng(0)
    water = np.zeros((32, 32, 32), np.float32)
    noisy = cgan.poisson_noise(water, 100.0, rng)
    assert abs(noisy.mean()) < 5  # unbiased
    assert noisy.std() == pytest.approx(1000 / np.sqrt(100), rel=0.05)  # 100 HU at water
    air = np.full((8, 8, 8), -1024, np.float32)
    assert np.array_equal(cgan.poisson_noise(air, 100.0, rng), air)


def test_depixelate_is_2x_nearest_down_and_up():
    a = np.arange(6 * 6 * 6, dtype=np.float32).reshape(6, 6, 6)
    d = cgan.depixelate(a, 2)
    assert d.shape == a.shape
    assert np.array_equal(d[0:2, 0:2, 0:2], np.full((2, 2, 2), a[0, 0, 0]))
    assert np.array_equal(d[::2, ::2, ::2], a[::2, ::2, ::2])
    odd = cgan.depixelate(a[:5, :5, :5], 2)
    assert odd.shape == (5, 5, 5)
    assert np.array_equal(cgan.degrade(a, cgan.Degradation("autoencode"), None), a)
    with pytest.raises(InputError):
        cgan.Degradation("sharpen")


def test_augment_applies_the_same_transform_to_condition_and_target():
    rng = np.random.default_rng(3)
    a = np.random.default_rng(0).normal(size=(8, 8, 8)).astype(np.float32)
    seen = set()
    for _ in range(20):
        x, y = cgan.augment([a, a * 2], rng)
        assert np.array_equal(y, 2 * x)
        seen.add(x.tobytes())
    assert len(seen) > 5


def test_normalisation_round_trips():
    hu = np.array([-1024, -1000, 0, 40, 1000, 3071], np.float32)
    x = hu_to_model(hu, FULL_12BIT)
    assert x.min() == -1 and x.max() == 1
    assert np.allclose(model_to_hu(x, FULL_12BIT), hu, atol=1e-3)


def test_block_model_on_a_volume_keeps_geometry_and_provenance():
    import torch

    from ctstudio.imaging.phantom import head_phantom
    from ctstudio.models.unet3d import UNet3DGenerator

    net = UNet3DGenerator(base=4, depth=2, residual=True)  # identity at initialisation
    model = cgan.CGANModel(net, "denoise", FULL_12BIT, 16, name="t", version="1")
    vol = head_phantom(shape=(20, 40, 36), spacing=(1.0, 1.0, 2.0), noise_sd=5.0, seed=0)
    out = model.apply(vol, overlap=4, batch_size=16)
    assert out.shape == vol.shape and out.spacing == vol.spacing
    assert np.abs(out.array.astype(int) - np.clip(vol.array, -1024, 3071)).max() <= 1
    assert out.provenance.synthetic and out.provenance.parameters["overlap"] == 4
    assert torch.is_grad_enabled()
