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


# -- the window function pinned at its edges (hand values; kills the mutants of issue 11) -------------------
def test_float_output_saturates_outside_the_window():
    """Float output is clipped to [0, 1] like the uint8 one: a viewer's LUT indexes with it."""
    w = Window(40, 80)  # [0, 80]
    f = apply_window(np.array([-1000, -1, 81, 3000]), w, np.float32)
    assert f.dtype == np.float32
    assert f.tolist() == [0.0, 0.0, 1.0, 1.0]
    f64 = apply_window(np.array([-15.0, 85.0]), Window.from_range(-10, 70), np.float64)
    assert f64.dtype == np.float64 and f64.tolist() == [0.0, 1.0]


def test_float_output_at_the_exact_edges_and_one_hu_inside():
    """lower -> 0, upper -> 1, one HU inside -> 1/width (a half-HU shift of an edge moves these)."""
    w = Window(40, 80)  # [0, 80], width 80
    f = apply_window(np.array([0, 1, 79, 80], dtype=np.int16), w, np.float64)
    np.testing.assert_allclose(f, [0.0, 1 / 80, 79 / 80, 1.0], rtol=0, atol=1e-6)
    # a window that does not start at 0 HU: lung L-600/W1500 = [-1350, 150]
    lung = preset("lung")
    f = apply_window(np.array([-1351, -1350, -1349, -600, 149, 150]), lung, np.float64)
    np.testing.assert_allclose(f, [0.0, 0.0, 1 / 1500, 0.5, 1499 / 1500, 1.0], rtol=0, atol=1e-6)


def test_uint8_output_on_a_narrow_window_by_hand():
    """Stroke L32/W8 = [28, 36]: each HU is 255/8 = 31.875 grey levels, rounded to nearest."""
    out = apply_window(np.array([27, 28, 29, 30, 32, 34, 35, 36, 37], dtype=np.int16), preset("stroke"))
    assert out.dtype == np.uint8
    # 0, 31.875, 63.75, 127.5 (half to even -> 128), 191.25, 223.125, 255
    assert out.tolist() == [0, 0, 32, 64, 128, 191, 223, 255, 255]


def test_uint8_output_of_a_window_below_zero_hu():
    """Bone L480/W2500 = [-770, 1730]: -270 HU is 20 % up the window -> 51; edges saturate."""
    out = apply_window(np.array([-2000, -770, -270, 1230, 1730, 2000]), preset("bone"))
    assert out.tolist() == [0, 0, 51, 204, 255, 255]


def test_window_is_immutable():
    """Presets are shared: changing one in place must be impossible."""
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["brain"].level = 0  # type: ignore[misc]


def test_window_validation_edges():
    """A 1 HU wide window (a threshold) is valid; a NaN/inf level or width, or an empty range, is not."""
    assert apply_window(np.array([-1, 0, 1]), Window(0, 1)).tolist() == [0, 128, 255]
    assert Window(0, 0.5).width == 0.5
    for level, width in ((float("nan"), 80), (40, float("inf")), (float("inf"), 80), (40, -1)):
        with pytest.raises(InputError):
            Window(level, width)
    with pytest.raises(InputError, match=r"upper bound must exceed its lower bound, got \[5, 5\]"):
        Window.from_range(5, 5)
