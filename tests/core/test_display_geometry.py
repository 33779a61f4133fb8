"""Display geometry: radiological orientation, probe indices, thick slabs, difference, resampling."""

from __future__ import annotations

import numpy as np
import pytest

from ctstudio.imaging.display_geometry import DisplayVolume, difference_array, resample_to
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


def test_resample_with_a_half_voxel_shift_matches_scipy():
    """B's grid sits half a voxel further along x than A's: trilinear resampling onto A equals
    scipy's own linear shift of B's array (an independent reference), inside the volume."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    arr = rng.integers(-1000, 1000, size=(6, 10, 12)).astype(np.int16)
    b = Volume(arr, spacing=(2.0, 1.0, 3.0), origin=(0.0, 0.0, 0.0))
    a = Volume(np.zeros_like(arr), spacing=(2.0, 1.0, 3.0), origin=(1.0, 0.0, 0.0))  # +0.5 voxel in x
    out, how = resample_to(b, a)
    assert "patient position" in how
    ref = ndimage.shift(arr.astype(np.float64), (0, 0, -0.5), order=1, mode="constant", cval=-1024)
    assert np.array_equal(out.array, np.rint(ref).astype(np.int16))  # last column: half outside B, half fill
    assert out.spacing == a.spacing and tuple(out.origin) == tuple(a.origin)


@pytest.mark.parametrize("direction", [np.eye(3), np.diag([-1.0, -1.0, 1.0]),
                                       np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])])
def test_patient_position_round_trip_and_growth(direction):
    """A crosshair kept by patient position: the same LPS point found again in a volume that grew
    by 3 slices on the low-index side of its first array axis (origin moved 3 slices back)."""
    vol = Volume(np.zeros((8, 9, 10), np.int16), spacing=(1.0, 2.0, 3.0), direction=direction,
                 origin=(10.0, -5.0, 40.0))
    d = DisplayVolume(vol)
    cursor = (2, 5, 7)
    lps = d.lps(cursor)
    assert np.allclose(lps, vol.index_to_lps(*d.original_index(cursor)))
    assert d.cursor_at_lps(lps) == cursor
    # grown by 3 slices along the array's first axis, on the side of lower index
    step = np.asarray(direction, float)[:, 2] * 3.0  # one slice along k, in mm
    grown = Volume(np.zeros((11, 9, 10), np.int16), spacing=vol.spacing, direction=direction,
                   origin=tuple(np.asarray(vol.origin) - 3 * step))
    g = DisplayVolume(grown)
    moved = g.cursor_at_lps(lps)
    assert np.allclose(g.lps(moved), lps)
    kji_old, kji_new = d.original_index(cursor), g.original_index(moved)
    assert kji_new == (kji_old[0] + 3, kji_old[1], kji_old[2])
    # far to the patient's left, back and top: clamped to the last voxel on every canonical (S, P, L) axis
    assert g.cursor_at_lps(np.asarray(lps) + 1e4) == tuple(n - 1 for n in g.shape)
    assert g.cursor_at_lps(np.asarray(lps) - 1e4) == (0, 0, 0)


def test_canonical_axis_of_array_axes():
    d = DisplayVolume(_marker_volume(np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])))
    # array axis 0 (k) runs patient left -> canonical L (2); axis 2 (i) runs superior -> canonical S (0)
    assert d.canonical_axis_of(0) == 2 and d.canonical_axis_of(2) == 0 and d.canonical_axis_of(1) == 1


def test_display_geometry_imports_without_qt_or_torch():
    """imaging/ is headless: importing the display geometry pulls in neither Qt nor torch."""
    import subprocess
    import sys

    code = ("import sys; import ctstudio.imaging.display_geometry; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'vtkmodules', 'vtk', 'torch')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
