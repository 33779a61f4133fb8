"""The reading policy for gantry tilt and irregular slice spacing: one pair of options (tilt=, spacing=)
with the answers resample / as-acquired / error, accepted for every format, and refusals that tell the
user what to do in words (never a Python keyword)."""

from __future__ import annotations

import re

import numpy as np
import pydicom
import pytest

from ctstudio.errors import GeometryError, InputError, SeriesError
from ctstudio.io import POLICY_CHOICES, ReadPolicy, inspect_path, read_volume, write_volume

from test_io_helpers import tilted_series, tiny_volume, uneven_series, write_series

PYTHON_SPELLING = re.compile(r"\b\w+=|'resample'|'report'|nonuniform")


def _pixels_by_position(folder):
    """The slices as stored, ordered along z, read with pydicom alone (the independent reference)."""
    datasets = sorted((pydicom.dcmread(f) for f in folder.glob("*.dcm")),
                      key=lambda d: float(d.ImagePositionPatient[2]))
    return np.stack([d.pixel_array.astype(np.int16) for d in datasets])


def test_choices_are_offered_in_dialog_order():
    assert POLICY_CHOICES == ("resample", "as-acquired", "error")
    assert ReadPolicy.resample().to_dict() == {"tilt": "resample", "spacing": "resample"}


def test_tilt_refusal_says_what_to_do_in_words(tmp_path):
    tilted_series(tmp_path / "t", 15.0)
    with pytest.raises(GeometryError) as exc:
        read_volume(tmp_path / "t")
    msg = str(exc.value)
    assert "--tilt resample" in msg and "--tilt as-acquired" in msg and "regular axial grid" in msg
    assert not PYTHON_SPELLING.search(msg), msg


def test_spacing_refusal_says_what_to_do_in_words(tmp_path):
    files = write_series(tmp_path / "m", tiny_volume())
    files[4].unlink()
    with pytest.raises(SeriesError) as exc:
        read_volume(tmp_path / "m")
    msg = str(exc.value)
    assert "--spacing resample" in msg and "--spacing as-acquired" in msg
    assert not PYTHON_SPELLING.search(msg), msg


def test_tilted_series_opened_as_acquired_keeps_the_slices(tmp_path):
    tilted_series(tmp_path / "t", 15.0)
    vol = read_volume(tmp_path / "t", tilt="as-acquired")
    assert np.array_equal(vol.array, _pixels_by_position(tmp_path / "t"))
    t = np.radians(15.0)
    row, col = np.array([1.0, 0, 0]), np.array([0, np.cos(t), -np.sin(t)])
    assert np.allclose(vol.direction, np.stack([row, col, np.cross(row, col)], axis=1), atol=1e-6)
    assert vol.spacing[2] == pytest.approx(2.0 * np.cos(t), abs=1e-6)  # the 2 mm table step along the normal
    assert any("as acquired" in s and "15.00 degree" in s for s in vol.provenance.steps)
    assert inspect_path(tmp_path / "t", tilt="as-acquired")["volume"]["shape_zyx"] == list(vol.shape)


def test_uneven_series_opened_as_acquired_keeps_the_slices(tmp_path):
    vol = tiny_volume()
    uneven_series(tmp_path / "n", vol)  # one step of 2.8 mm among 2.0 mm steps
    back = read_volume(tmp_path / "n", spacing="as-acquired")
    assert np.array_equal(back.array, vol.array)
    assert back.spacing[2] == pytest.approx(2.0)  # the median step
    assert any("as acquired" in s and "2.8" in s for s in back.provenance.steps)
    resampled = read_volume(tmp_path / "n", **ReadPolicy(spacing="resample").to_dict())
    assert resampled.shape[0] == 8 and any("resampled" in s for s in resampled.provenance.steps)


def test_every_format_accepts_the_policy(sample_path, tmp_path):
    plain = read_volume(sample_path)
    for tilt in POLICY_CHOICES:
        assert np.array_equal(read_volume(sample_path, tilt=tilt, spacing="As-Acquired").array, plain.array)
    write_volume(plain.with_array(plain.array[:4].copy()), tmp_path / "s", format="dicom")
    assert read_volume(tmp_path / "s", tilt="error", spacing="error").shape[0] == 4


def test_a_misspelt_choice_is_an_error_listing_the_choices(sample_path):
    with pytest.raises(InputError) as exc:
        read_volume(sample_path, tilt="resampel")
    msg = str(exc.value)
    assert "resample, as-acquired, error" in msg and "'resampel'" in msg and "gantry tilt" in msg


def test_an_unknown_option_is_an_error_naming_it(sample_path, tmp_path):
    with pytest.raises(InputError, match="serie_uid"):
        read_volume(sample_path, serie_uid="1.2.3")
    with pytest.raises(InputError, match="overwite"):
        write_volume(read_volume(sample_path), tmp_path / "x.nii.gz", overwite=True)
    with pytest.raises(InputError, match="tilts"):
        inspect_path(sample_path, tilts="resample")
    assert not (tmp_path / "x.nii.gz").exists()
