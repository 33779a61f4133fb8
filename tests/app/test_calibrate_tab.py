"""The Calibrate tab (IC-Net inspector) with the bundled icnet-demo on the headsq sample: the drift view against
the paper's drift written out in numpy and against metrics.robustness, the mu sweep (a point per mu, CSV and
PNG, cancel), and the generated-volume profile against ROI statistics computed in numpy."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from ctstudio.imaging.intensity import ICNET_ROI

pytestmark = pytest.mark.usefixtures("one_torch_thread")

K = 40  # a head slice with brain tissue in the ROI


@pytest.fixture(scope="module")
def sample(sample_path):
    from ctstudio.io import read_volume

    return read_volume(sample_path)


@pytest.fixture
def tab(qtbot, main_window, sample, sample_path):
    mw = main_window
    mw.set_volume(sample, "headsq_hu.nii.gz", str(sample_path))
    t = mw.tab("Calibrate")
    assert t is not None and type(t).__module__ == "ctstudio.app.tabs.calibrate"
    mw.tabs.setCurrentWidget(t)
    assert t.models.select("icnet-demo")
    errors: list = []
    mw.show_error = lambda title, msg: errors.append((title, msg))
    t.errors = errors
    return t


def paper_drift(x_hu: np.ndarray, mu: float) -> np.ndarray:
    """The ASCII paper's drift written out: in [-1, 1] of the ROI window, x' = (x - mean(x)) * mu + mean(x),
    clipped; pixels outside the ROI keep their HU."""
    lo, hi = -150.0, 150.0
    x = np.clip((x_hu - lo) / (hi - lo) * 2 - 1, -1, 1)
    y = np.clip((x - x.mean()) * mu + x.mean(), -1, 1)
    out = (y + 1) / 2 * (hi - lo) + lo
    inside = (x_hu > lo) & (x_hu < hi)
    return np.where(inside, out, x_hu)


def _drift_at(qtbot, t, mu):
    t.set_mu(mu)
    qtbot.waitUntil(lambda: t.drift is not None and t.drift["mu"] == pytest.approx(mu)
                    and t.drift["k"] == t.slice_spin.value(), timeout=120000)
    return t.drift


def test_drift_slider_against_the_paper_drift_and_robustness(qtbot, tab, sample):
    from ctstudio.diffusion.calibrate import histogram_match
    from ctstudio.metrics.robustness import robustness_curve
    from ctstudio.pipelines.models import load_model

    t = tab
    t.slice_spin.setValue(K)
    d = _drift_at(qtbot, t, 1.0)
    truth = sample.array[K].astype(np.float64)
    np.testing.assert_array_equal(t.drift_panels["drifted"].data, truth.astype(np.float32))  # mu = 1: no drift
    np.testing.assert_array_equal(d["drifted"], truth)
    assert t.drift_panels["drifted"].caption.text() == "ROI MAE 0.00 HU"
    d = _drift_at(qtbot, t, 0.8)
    assert t.mu_label.text() == "mu = 0.80"
    np.testing.assert_allclose(d["drifted"], paper_drift(truth, 0.8), atol=0.02)  # float32 inside the core
    np.testing.assert_allclose(t.drift_panels["drifted"].data, paper_drift(truth, 0.8), atol=0.02)
    assert not np.allclose(d["drifted"], truth)
    # ROI MAE by hand from the images shown, and the robustness metric's figure for the same slice and mu
    mask = (truth >= -150) & (truth <= 150)
    cal = load_model("icnet-demo", kind="icnet", device="cpu").runner
    for key, calibrator in (("icnet", cal), ("histogram", histogram_match)):
        shown = t.drift_panels[key].data.astype(np.float64)
        by_hand = np.abs(shown - truth)[mask].mean()
        ref = robustness_curve(sample.array, calibrator, slices=[K], mus=[0.8])["curve"][0]["mae_roi_hu"]
        assert d["mae_roi_hu"][key] == pytest.approx(ref, abs=1e-3)
        assert d["mae_roi_hu"][key] == pytest.approx(by_hand, abs=1e-3)
        assert t.drift_panels[key].caption.text() == f"ROI MAE {ref:.2f} HU"
        np.testing.assert_allclose(t.drift_diffs[key].data, shown - truth, atol=1e-3)
    # at mu = 0.8 IC-Net undoes the drift better than histogram matching, and both beat doing nothing
    assert d["mae_roi_hu"]["icnet"] < d["mae_roi_hu"]["histogram"] < d["mae_roi_hu"]["drifted"]


def test_mu_sweep_has_a_point_per_mu_and_exports(qtbot, tab, tmp_path):
    t = tab
    t.step_spin.setValue(0.1)
    t.every_spin.setValue(30)  # slices 1, 31, 61, 91
    events: list = []
    worker = t.run_sweep()
    worker.yielded.connect(events.append)
    qtbot.waitUntil(lambda: t.sweep_worker is None, timeout=300000)
    assert t.sweep is not None, t.errors
    mus = [0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3]
    assert t.sweep["mus"] == pytest.approx(mus) and t.sweep["slices"] == [1, 31, 61, 91]
    for key, curve in t.sweep_curves.items():
        x, y = curve.getData()
        assert list(x) == pytest.approx(mus) and len(y) == 7 and np.all(np.isfinite(y))
    row1 = t.sweep["rows"][3]
    assert row1["mu"] == 1.0 and row1["drifted"] == 0.0
    csv_path = t.export_csv(tmp_path / "sweep.csv")
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["mu", "drifted_roi_mae_hu", "icnet_roi_mae_hu", "histogram_roi_mae_hu"]
    assert [float(r[0]) for r in rows[1:]] == pytest.approx(mus)
    assert float(rows[2][2]) == pytest.approx(t.sweep["rows"][1]["icnet"], abs=1e-4)
    png = t.export_png(tmp_path / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mu_sweep_cancels(qtbot, tab):
    t = tab
    t.step_spin.setValue(0.01)  # 61 mu values: far too long to finish before the cancel
    t.every_spin.setValue(1)
    worker = t.run_sweep()

    def stop(ev):
        if ev["stage"] == "mu":
            t.cancel_sweep()

    worker.yielded.connect(stop)
    qtbot.waitUntil(lambda: t.sweep_worker is None, timeout=300000)
    assert t.sweep is None and not t.csv_button.isEnabled()
    assert 1 <= len(t.sweep_rows) < 61 and "cancelled" in t.sweep_label.text()


def test_generated_profile_against_numpy(qtbot, main_window, tab, sample):
    from ctstudio.jobs import run_job
    from ctstudio.pipelines.calibrate import CalibrateRequest, calibrate

    mw, t = main_window, tab
    gen = sample.with_array(np.ascontiguousarray(sample.array[30:38]), step="stands in for a generated volume",
                            origin=tuple(sample.index_to_lps(30, 0, 0)))  # where slices 30..37 are
    mw.set_volume(gen, "generated")
    t.set_seed(sample, "headsq seed")
    t.modes.setCurrentIndex(1)
    t.run_profile()
    qtbot.waitUntil(lambda: t.profile_worker is None, timeout=120000)
    assert t.profile is not None, t.errors
    # the same volume through `ctstudio calibrate`'s pipeline, statistics by hand
    expected = {"before": gen.array.astype(np.float64)}
    for method in ("icnet", "histogram"):
        expected[method] = run_job(calibrate(CalibrateRequest(gen, method, "icnet-demo", "cpu"))).array.astype(float)
    series = t.profile_series()
    for key, arr in expected.items():
        z, mean, sd = series[key]
        for k in range(arr.shape[0]):
            px = arr[k][(arr[k] > ICNET_ROI.lower) & (arr[k] < ICNET_ROI.upper)]
            assert mean[k] == pytest.approx(px.mean(), abs=0.01)
            assert sd[k] == pytest.approx(px.std(), abs=0.01)
        x, y = t.profile_curves[key].getData()
        np.testing.assert_allclose(y, mean)
    z_seed, mean_seed, _ = series["seed"]
    assert len(z_seed) == sample.shape[0]
    # the seed slices line up with the generated ones by patient position
    np.testing.assert_allclose(series["before"][0], z_seed[30:38])
    np.testing.assert_allclose(series["before"][1], mean_seed[30:38])
    # a click on a point shows that slice before / after / difference
    t.show_generated_slice(5)
    before = t.gen_panels["before"].data
    after = t.gen_panels["after"].data
    np.testing.assert_array_equal(before, gen.array[5].astype(np.float32))
    np.testing.assert_allclose(after, expected["icnet"][5], atol=0.51)  # the pipeline rounds to int16
    np.testing.assert_allclose(t.gen_panels["diff"].data, after - before)
    lo, hi = t.gen_panels["diff"].levels
    assert lo == -hi and hi >= 1
