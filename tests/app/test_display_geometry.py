"""Display geometry: radiological orientation, probe indices, thick slabs, difference, resampling."""

from __future__ import annotations

import numpy as np
import pytest

from ctstudio.app.widgets.display import DisplayVolume, difference_array, resample_to
from ctstudio.imaging.phantom import head_phantom
from ctstudio.volume import Volume


def _marker_volume(direction=np.eye(3), shape=(6, 7, 8)):
    """A volume whose voxel value encodes nothing but a few markers at known LPS extremes."""
    arr = np.zeros(shape, dtype=np.int16)
    return Volume(arr, spacing=(1.0, 2.0, 3.0), direction=direction)


def _lps_axis_marker_test(vol: Volume):
    """Put a bright voxel at the patient's most-left, most-posterior and most-superior corner and
    check where each plane puts it on screen."""
    d = DisplayVolume(vol)
    # canonical corner (S max, P max, L max) = last index on every canonical axis
    corner = tuple(n - 1 for n in d.shape)
    kji = d.original_index(corner)
    lps = vol.index_to_lps(*kji)
    # that voxel is the most left/posterior/superior one of the volume
    all_lps = np.array([vol.index_to_lps(k, j, i) for k in (0, vol.shape[0] - 1)
                        for j in (0, vol.shape[1] - 1) for i in (0, vol.shape[2] - 1)])
    assert np.allclose(lps, all_lps.max(axis=0))
    arr = vol.array.copy()
    arr[kji] = 1000
    d = DisplayVolume(vol.replace(array=arr))
    ax = d.plane_image("axial", corner[0])
    assert ax[-1, -1] == 1000  # posterior at the bottom, patient left on screen right
    cor = d.plane_image("coronal", corner[1])
    assert cor[0, -1] == 1000  # superior at the top, patient left on screen right
    sag = d.plane_image("sagittal", corner[2])
    assert sag[0, -1] == 1000  # superior at the top, posterior on screen right (anterior left)
    return d


def test_identity_direction_orientation():
    d = _lps_axis_marker_test(_marker_volume())
    assert d.spacing == (3.0, 2.0, 1.0)  # canonical (S, P, L) spacing
    assert d.pixel_mm("axial") == (2.0, 1.0)
    assert d.pixel_mm("coronal") == (3.0, 1.0)
    assert d.pixel_mm("sagittal") == (3.0, 2.0)
    assert not d.oblique


def test_nifti_style_flipped_direction_orientation():
    # RAS-stored NIfTI read as LPS: x runs to the right, y to the front (as example_ct.nii.gz)
    _lps_axis_marker_test(_marker_volume(np.diag([-1.0, -1.0, 1.0])))


def test_permuted_axes_orientation():
    # a volume stored sagittal-first: index i runs superior, j anterior, k left
    direction = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    d = _lps_axis_marker_test(_marker_volume(direction))
    for cursor in [(0, 0, 0), (1, 2, 3), tuple(n - 1 for n in d.shape)]:
        assert d.canonical_index(d.original_index(cursor)) == cursor


def test_probe_reports_original_index_value_and_mm():
    vol = head_phantom()
    d = DisplayVolume(vol)
    kji = (20, 64, 10)
    cursor = d.canonical_index(kji)
    info = d.probe(cursor)
    assert info["index_kji"] == kji
    assert info["hu"] == int(vol.array[kji])
    assert np.allclose(info["lps_mm"], vol.index_to_lps(*kji))


def test_thick_slab_modes_match_numpy():
    vol = head_phantom(noise_sd=20, seed=1)  # spacing z = 3 mm
    d = DisplayVolume(vol)
    z = 20
    lo, hi = d.slab_range("axial", z, 9.0)  # 3 slices
    assert (lo, hi) == (19, 22)
    block = vol.array[lo:hi]
    assert np.array_equal(d.plane_image("axial", z, "mip", 9.0), block.max(0))
    assert np.array_equal(d.plane_image("axial", z, "minip", 9.0), block.min(0))
    assert np.allclose(d.plane_image("axial", z, "mean", 9.0), block.mean(0), atol=1e-3)
    assert np.array_equal(d.plane_image("axial", z), vol.array[z])
    # sagittal slab across x (1.5 mm): 6 mm -> 4 columns, superior at the top
    lo, hi = d.slab_range("sagittal", 64, 6.0)
    assert hi - lo == 4
    assert np.array_equal(d.plane_image("sagittal", 64, "mip", 6.0), vol.array[:, :, lo:hi].max(2)[::-1])


def test_difference_with_itself_is_zero_and_never_wraps():
    vol = head_phantom(noise_sd=10)
    assert not difference_array(vol, vol).any()
    hi = vol.with_array(np.full(vol.shape, 32000, np.int16))
    lo = vol.with_array(np.full(vol.shape, -32000, np.int16))
    assert difference_array(hi, lo).min() == 64000


def test_resample_onto_reference_grid():
    a = head_phantom(shape=(24, 64, 64), spacing=(3.0, 3.0, 6.0))
    b = head_phantom(shape=(48, 128, 128), spacing=(1.5, 1.5, 3.0))
    # same physical object sampled twice as finely: after resampling, B matches A closely
    b2, how = resample_to(b, a)
    assert b2.shape == a.shape and "patient position" in how
    inside = a.array > -500
    assert np.median(np.abs(b2.array[inside].astype(int) - a.array[inside])) <= 15
    far = b.replace(origin=(5000.0, 5000.0, 5000.0))
    b3, how = resample_to(far, a)
    assert b3.shape == a.shape and "stretched" in how


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_screen_round_trip(plane):
    d = DisplayVolume(head_phantom())
    cursor = (10, 40, 90)
    row, col = d.to_screen(plane, cursor)
    assert d.from_screen(plane, row + 0.5, col + 0.5, cursor) == cursor
