"""ctstudio.imaging.resample: the helpers the DICOM reader uses for tilt and uneven spacing."""

from __future__ import annotations

import numpy as np

from ctstudio.imaging.resample import (
    axial_grid_for_sheared,
    resample_affine,
    resample_z_positions,
    uniform_positions,
)


def test_identity_affine_resample_is_exact():
    rng = np.random.default_rng(0)
    a = rng.integers(-1024, 3000, (5, 7, 9)).astype(np.int16)
    axes = np.diag([0.5, 0.7, 2.0])
    out = resample_affine(a, (1, 2, 3), axes, (1, 2, 3), np.eye(3), (0.5, 0.7, 2.0), a.shape)
    assert np.array_equal(out, a)


def test_affine_resample_shifts_by_whole_voxels_and_fills_outside():
    a = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    # destination starts one voxel further along x: out[..., i] == a[..., i + 1]
    out = resample_affine(a, (0, 0, 0), np.eye(3), (1, 0, 0), np.eye(3), (1, 1, 1), a.shape, fill=-1024)
    assert np.array_equal(out[..., :-1], a[..., 1:])
    assert np.all(out[..., -1] == -1024)


def test_z_interpolation_copies_grid_slices_and_blends_between():
    a = np.stack([np.full((2, 2), v, np.int16) for v in (0, 100, 300)])
    out = resample_z_positions(a, np.array([0.0, 1.0, 3.0]), np.array([0.0, 1.0, 2.0, 3.0, 4.0]), fill=-5)
    assert [int(s[0, 0]) for s in out] == [0, 100, 200, 300, -5]


def test_uniform_positions_cover_the_range():
    pos, dz = uniform_positions(np.array([0.0, 2.0, 4.0, 8.0]))
    assert dz == 2.0 and np.allclose(pos, [0, 2, 4, 6, 8])


def test_axial_grid_for_a_tilted_stack_is_orthonormal_and_covers_it():
    t = np.radians(20)
    axes = np.stack([[1.0, 0, 0], [0, np.cos(t), -np.sin(t)], [0, 0, 2.0]], axis=1)
    origin, direction, spacing, shape = axial_grid_for_sheared((10, 30, 20), (0, 0, 0), axes)
    assert np.allclose(direction, np.eye(3), atol=1e-9)
    assert spacing == (1.0, 1.0, 2.0)
    # the 30-row tilted plane spans 29*cos(20deg) = 27.3 mm in y and 9.9 mm in z; plus 18 mm of stacking
    assert shape == (14, 28, 20)  # z: (18 + 9.92) mm / 2 mm -> 14 slices
    assert origin[2] == np.min([0, -29 * np.sin(t)])
