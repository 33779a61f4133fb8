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


def test_dicom_pools_are_read_and_synthetic_tags_are_found(tmp_path):
    """Pools of DICOM series folders: the study runs on them, and the audit sees the synthetic tags."""
    from ctstudio.studies.session import ReaderSession
    from ctstudio.studies.store import Store

    spec_path = write_phantom_study(tmp_path, n_real=0, n_synthetic=0)
    for i in range(3):
        write_volume(head_phantom((6, 32, 32), noise_sd=10.0, seed=i), tmp_path / "real" / f"s{i}", format="dicom")
        write_volume(head_phantom((6, 32, 32), noise_sd=10.0, seed=50 + i), tmp_path / "synthetic" / f"s{i}",
                     format="dicom", synthetic=True)
    spec_path.write_text(spec_path.read_text().replace('"real/*.nii.gz"', '"real/s*"')
                         .replace('"synthetic/*.nii.gz"', '"synthetic/s*"').replace("pairs_per_reader = 10",
                                                                                   "pairs_per_reader = 4"))
    spec = load_spec(spec_path)
    s = ReaderSession.open(Store(tmp_path / "d.db"), spec, "R1", prefetch=False)
    s.begin()
    left, right = s.images()
    assert left.planes.shape == right.planes.shape == (1, 64, 64)
    rep = audit_spec(spec)
    f = _features(rep)
    assert f["header:SyntheticData"]["severity"] == "high", format_audit(rep)
    assert "header:ImageType" in f


def test_two_d_image_pools(tmp_path):
    """A mammogram-style 2D study: PNG and TIFF grey-value images, with the grey-value note."""
    import tifffile

    from ctstudio.studies.fixtures import write_png
    from ctstudio.studies.session import ReaderSession
    from ctstudio.studies.store import Store

    (tmp_path / "real").mkdir()
    (tmp_path / "synthetic").mkdir()
    for i in range(3):
        write_png(tmp_path / "real" / f"m{i}.png", seed=i)
        tifffile.imwrite(tmp_path / "synthetic" / f"m{i}.tif",
                         np.clip(np.random.default_rng(i).normal(120, 20, (40, 60)), 0, 255).astype(np.uint8))
    (tmp_path / "s.toml").write_text("""
[study]
name = "mammo"
kind = "pair"
seed = 3
pairs_per_reader = 5
min_view_ms = 0
[pools]
real = ["real/*.png"]
synthetic = ["synthetic/*.tif"]
[display]
window = [0, 255]
size = 80
""")
    spec = load_spec(tmp_path / "s.toml")
    s = ReaderSession.open(Store(tmp_path / "m.db"), spec, "R1", prefetch=False)
    s.begin()
    while s.current is not None:
        left, right = s.images()
        assert left.planes.shape == right.planes.shape == (1, 80, 80) and left.planes.dtype == right.planes.dtype
        s.answer(choice="left")
    rep = audit_spec(spec)
    assert any("grey values, not HU" in n for n in rep["notes"])
    assert _features(rep)["format"]["severity"] == "high"  # PNG vs TIFF is reported
