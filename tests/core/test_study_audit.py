"""The audit finds what could tell the pools apart, and stays quiet when nothing does."""

import numpy as np

from ctstudio.imaging.phantom import head_phantom
from ctstudio.io import write_volume
from ctstudio.studies.audit import audit_spec, format_audit, noise_floor
from ctstudio.studies.fixtures import write_phantom_study
from ctstudio.studies.spec import load_spec


def _features(rep):
    return {f["feature"]: f for f in rep["findings"]}


def test_matched_pools_give_no_finding_that_separates_them(tmp_path):
    spec = load_spec(write_phantom_study(tmp_path, n_real=4, n_synthetic=4))
    rep = audit_spec(spec)
    assert rep["n_high"] == 0, format_audit(rep)


def test_spacing_shape_noise_and_names_are_found(tmp_path):
    spec_path = write_phantom_study(tmp_path, n_real=3, n_synthetic=3)
    for i in range(3):  # the "synthetic" pool: other spacing, other shape, no noise, telling names
        write_volume(head_phantom((10, 40, 40), spacing=(1.0, 1.0, 2.0)), tmp_path / "synthetic" / f"case{i:02d}.nii.gz")
        (tmp_path / "synthetic" / f"case{i:02d}.nii.gz").rename(tmp_path / "synthetic" / f"fake_{i}.nii.gz")
    rep = audit_spec(load_spec(spec_path))
    f = _features(rep)
    for key in ("shape", "spacing", "noise_floor", "class_word_in_name"):
        assert key in f and f[key]["severity"] == "high", format_audit(rep)
    assert "fake" in f["class_word_in_name"]["message"]
    assert "separates the pools completely" in format_audit(rep)


def test_value_quantisation_is_found(tmp_path):
    spec_path = write_phantom_study(tmp_path, n_real=3, n_synthetic=3)
    for i in range(3):
        v = head_phantom((12, 48, 48), noise_sd=10.0, seed=100 + i)
        q = v.with_array((v.array // 8 * 8).astype(np.int16))  # coarser value steps
        write_volume(q, tmp_path / "synthetic" / f"case{i:02d}.nii.gz")
    f = _features(audit_spec(load_spec(spec_path)))
    assert f["value_step_gcd"]["severity"] == "high"


def test_noise_floor_estimates_gaussian_noise():
    rng = np.random.default_rng(0)
    img = rng.normal(0, 20, (200, 200))
    assert abs(noise_floor(img) - 20) < 1.5
