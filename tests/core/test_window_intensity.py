import numpy as np
import pytest

from ctstudio.errors import InputError
from ctstudio.imaging import intensity
from ctstudio.imaging.window import PRESETS, Window, apply_window, preset

EXPECTED = {  # name: (lower, upper) in HU, from the issue
    "brain": (0, 80), "ascii-brain": (-10, 70), "subdural": (-32.5, 182.5), "stroke": (28, 36),
    "bone": (-770, 1730), "lung": (-1350, 150), "mediastinum": (-125, 225), "soft-tissue": (-160, 240),
    "liver": (15, 165), "12-bit": (-1024, 3071), "icnet-roi": (-150, 150),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_presets_have_their_values(name):
    w = preset(name)
    assert (w.lower, w.upper) == EXPECTED[name]


def test_level_width_presets_exact():
    assert (PRESETS["brain"].level, PRESETS["brain"].width) == (40, 80)
    assert (PRESETS["lung"].level, PRESETS["lung"].width) == (-600, 1500)
    assert (PRESETS["liver"].level, PRESETS["liver"].width) == (90, 150)


def test_unknown_preset_lists_names():
    with pytest.raises(InputError, match="brain"):
        preset("nope")


def test_apply_window_maps_and_saturates():
    w = Window(40, 80)
    out = apply_window(np.array([-100, 0, 40, 80, 500]), w)
    assert out.dtype == np.uint8 and out.tolist() == [0, 0, 128, 255, 255]
    f = apply_window(np.array([0, 20, 80]), w, np.float32)
    np.testing.assert_allclose(f, [0, 0.25, 1])


def test_bad_window_refused():
    with pytest.raises(InputError):
        Window(0, 0)
    with pytest.raises(InputError):
        Window.from_range(10, 5)


@pytest.mark.parametrize("rng", list(intensity.RANGES.values()))
def test_hu_model_round_trip(rng):
    hu = np.arange(int(rng.lower), int(rng.upper) + 1, dtype=np.int16)
    x = intensity.hu_to_model(hu, rng)
    assert x.min() == -1 and x.max() == 1 and x.dtype == np.float32
    np.testing.assert_array_equal(intensity.model_to_hu_int16(x, rng), hu)


def test_hu_model_clip_and_torch():
    import torch
    x = intensity.hu_to_model(np.array([-3000, 5000]), intensity.FULL_12BIT)
    assert x.tolist() == [-1, 1]
    t = intensity.hu_to_model(torch.tensor([-1024.0, 3071.0]))
    assert t.tolist() == [-1, 1]
    assert intensity.model_to_hu(torch.tensor([0.0]), intensity.ICNET_ROI).item() == 0
