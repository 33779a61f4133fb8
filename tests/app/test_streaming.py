"""Streaming into the viewer: new slices of the shown volume (or a grown volume) appear in place, and the
crosshair, window / level, zoom and pan stay as the user left them."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from ctstudio.imaging import phantom as ph
from ctstudio.imaging.window import Window


def _viewport_point(view, cursor):
    x, y = view.screen_pos_of(cursor)
    p = view.mapFromScene(view.vb.mapViewToScene(QPointF(x, y)))
    return p.x(), p.y()


@pytest.fixture
def streaming_window(qtbot, main_window):
    vol = ph.head_phantom(shape=(40, 96, 96), spacing=(2.0, 2.0, 3.0))
    main_window.set_volume(vol, "phantom")
    viewer = main_window.tab("Viewer")
    tri = viewer.triplanar
    qtbot.wait(50)
    # the user moved the crosshair, chose a manual window, zoomed and panned the axial and coronal views
    tri.state.set_cursor((21, 40, 55))
    tri.state.set_level_width(55.0, 260.0)
    tri.views["axial"].zoom(2.0)
    tri.views["coronal"].zoom(1.5)
    tri.views["coronal"].vb.translateBy(x=7.0, y=-5.0)
    qtbot.wait(50)
    return main_window, viewer, vol


def _view_ranges(tri):
    return {p: [list(r) for r in v.vb.viewRange()] for p, v in tri.views.items()}


def test_updated_slice_shows_new_pixels_and_keeps_the_view(qtbot, streaming_window):
    mw, viewer, vol = streaming_window
    tri = viewer.triplanar
    cursor, window, ranges = tri.state.cursor, tri.state.window, _view_ranges(tri)
    k = tri.display.original_index(cursor)[0]  # the axial slice on screen (identity direction: k = s)
    arr = vol.array.copy()
    arr[k] = 700
    arr[k - 5] = -700  # another slice, not on the axial screen
    mw.update_volume(vol.with_array(arr), [k, k - 5])
    qtbot.wait(50)
    assert tri.state.cursor == cursor
    assert tri.state.window == window and (window.level, window.width) == (55.0, 260.0)
    assert _view_ranges(tri) == ranges, "zoom or pan changed"
    assert (tri.views["axial"].image_data == 700).all(), "the new slice is not on screen"
    assert (tri.views["axial"].displayed_grey() == 255).all()
    coronal = tri.views["coronal"].image_data  # superior at the top: slice k is row n - 1 - k
    n = vol.shape[0]
    assert (coronal[n - 1 - k] == 700).all() and (coronal[n - 1 - (k - 5)] == -700).all()
    assert np.array_equal(coronal[n - 1 - (k + 1)], vol.array[k + 1, cursor[1], :])
    assert mw.volume.array[k, 0, 0] == 700 and viewer.volume is mw.volume


def test_unchanged_axial_slice_is_not_resliced(qtbot, streaming_window):
    mw, viewer, vol = streaming_window
    tri = viewer.triplanar
    before = tri.views["axial"].image_data
    arr = vol.array.copy()
    arr[2] = 900
    mw.update_volume(vol.with_array(arr), [2])
    qtbot.wait(20)
    assert tri.views["axial"].image_data is before
    assert tri.views["sagittal"].image_data is not None and (tri.views["sagittal"].image_data[-1 - 2] == 900).all()


@pytest.mark.parametrize("side", ["inferior", "superior"])
def test_growing_keeps_the_crosshair_on_the_same_patient_position(qtbot, streaming_window, side):
    """Eight slices generated below the volume (towards the feet: the array grows at index 0 and its
    origin moves down) or above it (appended). The crosshair stays on the same patient point, and where
    it is on screen in the zoomed views."""
    mw, viewer, vol = streaming_window
    tri = viewer.triplanar
    lps_before = tri.display.lps(tri.state.cursor)
    window, axial_range = tri.state.window, _view_ranges(tri)["axial"]
    on_screen = {p: _viewport_point(v, tri.state.cursor) for p, v in tri.views.items() if p != "sagittal"}
    extra = np.full((8,) + vol.shape[1:], -1000, np.int16)
    extra[:, 40:50, 40:60] = 400  # under the sagittal slice (i = 55)
    if side == "inferior":
        origin = np.asarray(vol.origin) - 8 * vol.spacing[2] * np.asarray(vol.direction)[:, 2]
        grown = vol.with_array(np.concatenate([extra, vol.array]), origin=tuple(origin))
    else:
        grown = vol.with_array(np.concatenate([vol.array, extra]))
    mw.update_volume(grown)
    qtbot.wait(50)
    assert tri.display.shape[0] == vol.shape[0] + 8
    assert np.allclose(tri.display.lps(tri.state.cursor), lps_before)
    assert tri.state.cursor[0] == (21 + 8 if side == "inferior" else 21)
    assert tri.state.window == window
    assert _view_ranges(tri)["axial"] == axial_range  # the grown axis is not in the axial image
    for plane, (x, y) in on_screen.items():  # zoomed views: the crosshair did not move on screen
        x2, y2 = _viewport_point(tri.views[plane], tri.state.cursor)
        assert abs(x2 - x) < 1.0 and abs(y2 - y) < 1.0, plane
    # the never-zoomed sagittal view refits to show the grown image
    sag = tri.views["sagittal"]
    assert sag.image_data.shape[0] == vol.shape[0] + 8
    (x0, x1), (y0, y1) = sag.vb.viewRange()
    assert y1 - y0 >= (vol.shape[0] + 8) * vol.spacing[2] * 0.99
    new_rows = sag.image_data[-8:] if side == "inferior" else sag.image_data[:8]  # superior at the top
    assert (new_rows[:, 40:50] == 400).all()


def test_update_before_any_volume_shows_it(qtbot, main_window):
    vol = ph.head_phantom(shape=(20, 48, 48))
    main_window.update_volume(vol, [0])
    qtbot.wait(20)
    tri = main_window.tab("Viewer").triplanar
    assert tri.display is not None and tri.display.shape == (20, 48, 48)


def test_set_volume_still_resets_for_a_new_file(qtbot, streaming_window):
    """Opening another file is not streaming: the view, crosshair and window start afresh."""
    mw, viewer, vol = streaming_window
    mw.set_volume(ph.head_phantom(shape=(30, 64, 64)), "other")
    qtbot.wait(20)
    tri = viewer.triplanar
    assert tri.state.cursor == (15, 32, 32)
    assert tri.state.window != Window(55.0, 260.0, "")


def test_a_stream_of_updates_re_renders_the_3d_view_once_with_the_latest_volume(qtbot):
    """Slices arrive faster than a software-rendered 3D view draws: the 3D view follows at most once an
    interval, with the newest volume, while the slice views follow every update."""
    from ctstudio.app.widgets.triplanar import TriPlanar

    class Recording3D:
        def __init__(self):
            self.updates = []

        def update_volume(self, display):
            self.updates.append(display)

    tri = TriPlanar()
    qtbot.addWidget(tri)
    vol = ph.head_phantom(shape=(8, 32, 32), noise_sd=0.0, seed=0)
    tri.set_volume(vol)
    tri.view3d = Recording3D()
    tri.render3d_interval_ms = 200
    arr = vol.array.copy()
    for k in range(5):
        arr[k] = 1000 + k
        tri.update_volume(vol.with_array(arr.copy()), [k])
    assert tri.view3d.updates == []  # nothing rendered yet: the slice views show each update
    qtbot.waitUntil(lambda: len(tri.view3d.updates) == 1, timeout=5000)
    qtbot.wait(400)
    assert len(tri.view3d.updates) == 1 and tri.view3d.updates[0] is tri.display
    tri.view3d = None
