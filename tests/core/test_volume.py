import numpy as np
import pytest

from ctstudio.errors import ValueRangeError
from ctstudio.volume import Metadata, Provenance, Volume


def test_from_hu_rounds_floats_and_refuses_nan():
    v = Volume.from_hu(np.array([[[1.4, -2.6]]]))
    assert v.array.dtype == np.int16 and v.array.tolist() == [[[1, -3]]]
    with pytest.raises(ValueRangeError, match="NaN or infinite"):
        Volume.from_hu(np.array([[[np.nan, 0.0]]]))
    with pytest.raises(ValueRangeError, match="int16"):
        Volume.from_hu(np.array([[[40000]]], dtype=np.int32))


def test_non_int16_array_refused_and_2d_promoted():
    with pytest.raises(ValueRangeError, match="int16"):
        Volume(np.zeros((2, 2, 2), np.float32))
    assert Volume(np.zeros((4, 5), np.int16)).shape == (1, 4, 5)


def test_geometry_round_trip_with_rotation():
    theta = np.deg2rad(20)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    v = Volume(np.zeros((4, 5, 6), np.int16), spacing=(0.5, 0.7, 2.0), origin=(10, -20, 30), direction=rot)
    p = v.index_to_lps(3, 2, 1)
    np.testing.assert_allclose(v.lps_to_index(p), [3, 2, 1], atol=1e-9)
    np.testing.assert_allclose(v.index_to_lps(0, 0, 0), [10, -20, 30])
    np.testing.assert_allclose(v.index_to_lps(1, 0, 0), [10, -20, 32])
    assert v.spacing_zyx == (2.0, 0.7, 0.5)


def test_bad_geometry_refused():
    with pytest.raises(ValueRangeError, match="positive"):
        Volume(np.zeros((1, 1, 1), np.int16), spacing=(1, 0, 1))
    with pytest.raises(ValueRangeError, match="rotation"):
        Volume(np.zeros((1, 1, 1), np.int16), direction=np.diag([1, 1, 2]))


def test_clip_is_explicit_and_recorded():
    a = np.array([[[-2000, 0, 4000]]], np.int16)
    v = Volume(a)
    assert v.count_outside() == 2
    c = v.clip_to_12bit()
    assert c.array.tolist() == [[[-1024, 0, 3071]]]
    assert v.array.tolist() == [[[-2000, 0, 4000]]]  # the original is untouched
    assert "2 voxels changed" in c.provenance.steps[-1]
    assert c.clip_to_12bit() is c


def test_metadata_provenance_round_trip():
    md = Metadata(kernel="B30f", slice_thickness=1.0, manufacturer="SIEMENS")
    assert Metadata.from_dict(md.to_dict()) == md
    pr = Provenance(model="ascii", model_version="1", parameters={"seed": 3}, steps=("a",))
    assert pr.synthetic and Provenance.from_dict(pr.to_dict()) == pr
    assert not Provenance(source_files=("x.dcm",)).synthetic
