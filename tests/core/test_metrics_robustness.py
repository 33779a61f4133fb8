"""IC-Net robustness curve (ASCII Fig. 5) with any calibrator; histogram matching on real CT."""

from __future__ import annotations

import numpy as np
import pytest

from ctstudio.errors import InputError, ModelError
from ctstudio.metrics import robustness as rb


@pytest.fixture(scope="module")
def chest(shared_data):
    from ctstudio.io import read_volume

    return read_volume(shared_data / "chest-ct-philips-bigbore" / "chest_ct_slices038-101.nii.gz").array[:, ::2, ::2]


def test_shift_is_a_scaling_in_the_model_range():
    hu = np.array([[-1024.0, 1023.5, 3071.0]])  # model range -1, 0, 1
    np.testing.assert_allclose(rb.shift_slice(hu, 0.5, mode="model"), [[-1024 + 4095 / 4, 1023.5, 1023.5 + 4095 / 4]])
    np.testing.assert_allclose(rb.shift_slice(hu, 1.0, mode="model"), hu)
    np.testing.assert_allclose(rb.shift_slice(hu, 0.9, mode="hu"), hu * 0.9)


def test_default_shift_is_icnets_training_drift_in_the_roi():
    hu = np.array([[-500.0, -100.0, 0.0, 50.0, 1200.0]])
    out = rb.shift_slice(hu, 1.2)
    # outside the ROI untouched; inside, (x - mean) * mu + mean in [-1, 1] of [-150, 150] HU
    assert out[0, 0] == -500 and out[0, 4] == 1200
    x = (hu + 150) / 150 - 1
    x = x.clip(-1, 1)
    m = x.mean()
    expect = (((x - m) * 1.2 + m).clip(-1, 1) + 1) * 150 - 150
    np.testing.assert_allclose(out[0, 1:4], expect[0, 1:4], atol=1e-3)
    with pytest.raises(InputError, match="icnet, model, hu"):
        rb.shift_slice(hu, 1.1, mode="nope")


def test_curve_with_an_identity_calibrator_is_the_shift_error(chest):
    out = rb.robustness_curve(chest, lambda gen, prior: gen)
    assert out["mus"] == [0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3] and out["slices"] == [7, 14, 21, 28]
    by_mu = {r["mu"]: r for r in out["curve"]}
    assert by_mu[1.0]["mae_hu"] == pytest.approx(0, abs=1e-3)
    for r in out["curve"]:
        assert r["mae_hu"] == pytest.approx(r["mae_shifted_hu"])
    assert by_mu[0.7]["mae_hu"] > by_mu[0.9]["mae_hu"] > 0  # a larger shift, a larger error


def test_histogram_matching_calibrates_shifted_real_slices(chest):
    out = rb.robustness_curve(chest, rb.histogram_matching, mus=(0.8, 0.9, 1.0))
    for r in out["curve"]:
        if r["mu"] != 1.0:
            assert r["mae_hu"] < 0.5 * r["mae_shifted_hu"]  # calibration removes most of the shift
    # without a shift, matching to the previous slice costs only the slice-to-slice difference
    assert out["curve"][-1]["mae_hu"] < 40


def test_bad_slices_and_bad_calibrators_are_clear_errors(chest):
    with pytest.raises(InputError, match="previous slice"):
        rb.robustness_curve(chest, rb.histogram_matching, slices=(0, 7))
    with pytest.raises(InputError, match="previous slice"):
        rb.robustness_curve(chest, rb.histogram_matching, slices=(500,))
    with pytest.raises(ModelError, match="shape"):
        rb.robustness_curve(chest, lambda g, p: g[:10], slices=(7,), mus=(1.0,))


def test_icnet_calibrator_is_loaded_through_the_generation_module(monkeypatch, chest):
    """The wiring to ctstudio.diffusion.calibrate.ICNetCalibrator, with a stand-in module (the real
    IC-Net is tested by its own issue); a missing checkpoint is a ModelError, and the CLI's 'auto'
    falls back to histogram matching and says so."""
    import sys
    import types

    from ctstudio.metrics.suite import EvalOptions, make_calibrator

    class FakeICNet:
        name = "icnet-test"

        @classmethod
        def from_checkpoint(cls, name_or_path=None):
            if name_or_path == "missing":
                raise ModelError("no model named 'missing'")
            return cls()

        def __call__(self, generated, prior):
            return generated * 0 + prior  # returns the prior: MAE independent of mu

    mod = types.ModuleType("ctstudio.diffusion.calibrate")
    mod.ICNetCalibrator = FakeICNet
    monkeypatch.setitem(sys.modules, "ctstudio.diffusion.calibrate", mod)
    cal, label = rb.icnet_calibrator()
    assert label == "IC-Net (icnet-test)"
    out = rb.robustness_curve(chest, cal, slices=(7,), mus=(0.8, 1.2))
    assert out["curve"][0]["mae_hu"] == pytest.approx(out["curve"][1]["mae_hu"])
    with pytest.raises(ModelError):
        make_calibrator(EvalOptions(calibrator="icnet", icnet_checkpoint="missing"))
    fn, label = make_calibrator(EvalOptions(calibrator="auto", icnet_checkpoint="missing"))
    assert fn is rb.histogram_matching and "IC-Net not available" in label
