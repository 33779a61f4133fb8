"""The IC-Net inspector's core (pipelines/inspect) and the model-fit warnings (pipelines/model_fit): hand values."""

import numpy as np
import pytest

from ctstudio.errors import InputError
from ctstudio.volume import Metadata


def test_roi_profile_by_hand():
    from ctstudio.pipelines.inspect import roi_profile

    a = np.array([[[-1000, 10, 20, 150], [30, -150, 2000, 40]],  # ROI pixels: 10, 20, 30, 40 (bounds excluded)
                  [[-1000, -1000, 500, 500], [-1000, 0, 0, -1000]]], dtype=np.int16)
    p = roi_profile(a)
    assert p["count"].tolist() == [4, 2]
    assert p["mean"][0] == pytest.approx(25.0) and p["sd"][0] == pytest.approx(np.sqrt(125.0))
    assert p["mean"][1] == 0.0 and p["sd"][1] == 0.0
    empty = roi_profile(np.full((1, 2, 2), -1000))
    assert np.isnan(empty["mean"][0]) and empty["count"][0] == 0


def test_sweep_mus_and_ct_range():
    from ctstudio.pipelines.inspect import check_ct_range, sweep_mus

    assert sweep_mus(0.05) == pytest.approx([0.7 + 0.05 * i for i in range(13)])
    assert sweep_mus(0.1)[-1] == 1.3 and len(sweep_mus(0.1)) == 7
    with pytest.raises(InputError, match="does not look like CT in HU"):
        check_ct_range(np.arange(0, 4000).reshape(1, 40, 100))  # raw stored values
    check_ct_range(np.array([[-1024, 40]]))


def test_mu_one_is_no_drift_and_sweep_csv(tmp_path):
    from ctstudio.jobs import run_job, validate_event
    from ctstudio.metrics.robustness import shift_slice
    from ctstudio.pipelines.inspect import mu_sweep, sweep_csv

    rng = np.random.default_rng(0)
    vol = np.where(rng.random((3, 16, 16)) < 0.3, -1000, rng.normal(30, 20, (3, 16, 16))).round()
    np.testing.assert_array_equal(shift_slice(vol[1], 1.0), vol[1])
    identity = lambda g, p: g  # noqa: E731  (a calibrator that does nothing: its MAE is the drift's)
    events = []
    sweep = run_job(mu_sweep(vol, {"none": identity}, mus=[0.8, 1.0], slices=[1, 2]), events.append)
    assert [validate_event(e)["stage"] for e in events] == ["mu", "mu"] and events[-1]["done"] == 4
    rows = sweep["rows"]
    assert rows[1]["drifted"] == 0.0 and rows[0]["none"] == rows[0]["drifted"] > 0
    out = sweep_csv(sweep, tmp_path / "s.csv").read_text().splitlines()
    assert out[0] == "mu,drifted_roi_mae_hu,none_roi_mae_hu" and out[2].startswith("1,0.0000,")


def test_kernel_maker_and_warnings():
    from ctstudio.pipelines.model_fit import input_warnings, kernel_maker

    assert [kernel_maker(k) for k in ("B30f", "Br40d", "UB", "YA", "FC13", "BONE", "")] == \
        ["Siemens", "Siemens", "Philips", "Philips", "Canon (Toshiba)", "GE", None]
    meta = {"name": "m", "kind": "ggcl", "config": {"domains": ["UB", "YA"]}, "card": {}}
    w = input_warnings(meta, Metadata(kernel="B30f", manufacturer="SIEMENS"))
    assert len(w) == 2 and "B30f" in w[0] and "Philips" in w[1] and "SIEMENS" in w[1]
    assert input_warnings(meta, Metadata(kernel="ya", manufacturer="Philips")) == []
    assert "unknown" in input_warnings(meta, Metadata())[0]
    cgan = {"name": "c", "kind": "cgan", "config": {}, "card": {"manufacturer": "Philips Brilliance"}}
    assert "Philips" in input_warnings(cgan, Metadata(manufacturer="GE MEDICAL SYSTEMS"))[0]
    assert input_warnings({"name": "c", "kind": "cgan", "config": {}, "card": {}}, Metadata(kernel="B30f")) == []
