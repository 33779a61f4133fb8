"""The viewer as a user drives it: open, linked crosshair, scrolling, presets, probe, slab, cine,
compare, error dialogs, settings, drag and drop, DICOM series chooser, save as."""

from __future__ import annotations


import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QMouseEvent

from ctstudio.imaging.display_geometry import PLANE_SPECS
from ctstudio.imaging import phantom as ph
from ctstudio.imaging.window import PRESETS, apply_window
from tests.app.conftest import open_and_wait, wait_error

SHARED_VOLUMES = [
    "head-ct-vtk-headsq/headsq_64x64x93_raw-values.nii.gz",
    "head-ct-cq500-single-slice/693_UNCR.dcm",
    "head-ct-cq500-single-slice/693_J2KR.dcm",
    "head-phantom-philips-2kernels/phantom_UB-std_slices24-55.nii.gz",
    "head-phantom-philips-2kernels/phantom_YA-bone_slices24-55.nii.gz",
    "head-phantom-philips-2kernels/original_UB-std_slice040.dcm",
    "chest-ct-siemens-kernel-pairs/test1_B10.mha",
    "chest-ct-siemens-kernel-pairs/test1_B30.mha",
    "chest-ct-siemens-kernel-pairs/test1_B50.mha",
    "chest-ct-siemens-kernel-pairs/test1_B70.mha",
    "chest-ct-philips-bigbore/chest_ct_slices038-101.nii.gz",
    "chest-ct-philips-bigbore/original_slice070.dcm",
    "abdomen-ct-totalsegmentator-examples/example_ct.nii.gz",
    "abdomen-ct-totalsegmentator-examples/example_ct_sm.nii.gz",
    "abdomen-ct-totalsegmentator-examples/example_ct_dicom",
]


def viewport_point(view, cursor) -> QPoint:
    """Where the centre of canonical voxel ``cursor`` is on ``view``'s viewport."""
    x, y = view.screen_pos_of(cursor)
    return view.mapFromScene(view.vb.mapViewToScene(QPointF(x, y)))


def drag(widget, button, points) -> None:
    """Press ``button`` at points[0], move through the rest with it held, release at the last.

    Events are 15 ms apart: pyqtgraph drops mouse moves closer than 10 ms (its mouseRateLimit)."""
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    def send(kind, pt, buttons):
        pt = QPointF(pt)
        ev = QMouseEvent(kind, pt, QPointF(widget.mapToGlobal(pt.toPoint())), button if kind != QMouseEvent.Type.MouseMove
                         else Qt.MouseButton.NoButton, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, ev)

    send(QMouseEvent.Type.MouseButtonPress, points[0], button)
    for pt in points[1:]:
        QTest.qWait(15)
        send(QMouseEvent.Type.MouseMove, pt, button)
    send(QMouseEvent.Type.MouseButtonRelease, points[-1], Qt.MouseButton.NoButton)


def viewer(mw):
    return mw.tab("Viewer")


@pytest.fixture
def phantom_in_window(main_window):
    vol = ph.head_phantom()
    main_window.set_volume(vol, "phantom")
    return main_window, vol


def test_tabs_are_laid_out_and_pluggable(main_window):
    titles = [main_window.tabs.tabText(i) for i in range(main_window.tabs.count())]
    for t in ("Viewer", "Generate", "Convert", "Calibrate", "Study", "Results", "Train"):
        assert t in titles
    assert titles[0] == "Viewer" and main_window.tabs.isTabEnabled(0)
    # planned tabs without a module are honest, disabled placeholders that say which issue brings them
    i = titles.index("Generate")
    if main_window.tab("Generate") is None:
        assert not main_window.tabs.isTabEnabled(i)
        assert "issue" in main_window.tabs.tabToolTip(i)
    menus = [a.text() for a in main_window.menuBar().actions()]
    assert "&File" in menus and "&Window" in menus and "&View" in menus


@pytest.mark.parametrize("rel", SHARED_VOLUMES)
def test_each_shared_volume_opens(qtbot, main_window, shared_data, rel):
    vol = open_and_wait(qtbot, main_window, shared_data / rel)
    v = viewer(main_window)
    assert v.triplanar.volume is vol
    for plane, view in v.views.items():
        assert view.image_data is not None
        assert view.image_data.shape == v.triplanar.display.plane_shape(plane)
        assert view.slice_index == v.triplanar.display.shape[PLANE_SPECS[plane].fixed] // 2
        assert view.levels == (v.state.window.lower, v.state.window.upper)
    assert v.state.window.name in PRESETS  # a named, sensible default window
    assert main_window.volume_label in main_window.windowTitle()
    assert str(vol.shape[0]) in main_window.volume_info.text()


def test_sample_opens_with_physical_aspect(qtbot, main_window, sample_path):
    open_and_wait(qtbot, main_window, sample_path)
    v = viewer(main_window)
    vol = v.triplanar.volume  # 93 x 64 x 64 at 3.2 x 3.2 x 1.5 mm
    for plane, (w_mm, h_mm) in {"axial": (64 * 3.2, 64 * 3.2), "coronal": (64 * 3.2, 93 * 1.5),
                                "sagittal": (64 * 3.2, 93 * 1.5)}.items():
        view = v.views[plane]
        rect = view.image.mapRectToParent(view.image.boundingRect())
        assert rect.width() == pytest.approx(w_mm, rel=1e-4)
        assert rect.height() == pytest.approx(h_mm, rel=1e-4)
    assert vol.shape == (93, 64, 64)


def test_orientation_labels(phantom_in_window):
    mw, _ = phantom_in_window
    views = viewer(mw).views
    assert views["axial"].orientation_labels() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert views["coronal"].orientation_labels() == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert views["sagittal"].orientation_labels() == {"left": "A", "right": "P", "top": "S", "bottom": "I"}


def test_click_in_one_view_moves_the_other_two(qtbot, phantom_in_window):
    mw, vol = phantom_in_window
    views = viewer(mw).views
    state = viewer(mw).state
    z0 = views["axial"].slice_index
    target = (z0, 30, 100)  # canonical (s, p, l)
    qtbot.mouseClick(views["axial"].viewport(), Qt.MouseButton.LeftButton, pos=viewport_point(views["axial"], target))
    assert state.cursor == target
    assert views["axial"].slice_index == z0  # its own slice stays
    assert views["coronal"].slice_index == 30
    assert views["sagittal"].slice_index == 100
    # the other views now show those slices
    d = viewer(mw).triplanar.display
    assert np.array_equal(views["coronal"].image_data, d.plane_image("coronal", 30))
    assert np.array_equal(views["sagittal"].image_data, d.plane_image("sagittal", 100))
    # and their crosshair lines pass through the clicked voxel
    x, y = views["coronal"].screen_pos_of(target)
    assert views["coronal"].crosshair_pos() == pytest.approx((x, y))
    # a click in the sagittal view moves the axial slice
    qtbot.mouseClick(views["sagittal"].viewport(), Qt.MouseButton.LeftButton,
                     pos=viewport_point(views["sagittal"], (12, 50, 100)))
    assert views["axial"].slice_index == 12 and views["coronal"].slice_index == 50


def test_drag_moves_crosshair_and_right_drag_changes_window(qtbot, phantom_in_window):
    mw, _ = phantom_in_window
    v = viewer(mw)
    view = v.views["axial"]
    vp = view.viewport()
    start, end = viewport_point(view, (24, 64, 64)), viewport_point(view, (24, 20, 30))
    drag(vp, Qt.MouseButton.LeftButton, [start + (end - start) * float(t) for t in np.linspace(0, 1, 6)])
    assert v.state.cursor[1:] == (20, 30)
    before = v.state.window
    drag(vp, Qt.MouseButton.RightButton, [start + QPoint(dx, dx) for dx in (0, 10, 20, 40, 60)])
    after = v.state.window
    assert after.width > before.width  # drag right: wider
    assert after.level < before.level  # drag down: lower level
    assert view.levels == (after.lower, after.upper)
    assert np.array_equal(view.displayed_grey(), apply_window(view.image_data, after))


def test_window_drag_button_is_configurable(qtbot, main_window, settings):
    v = viewer(main_window)
    v.set_window_button("middle")
    assert settings.value("viewer/window_button") == "middle"
    assert v.bindings.role(Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier) == "window"
    assert v.bindings.role(Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier) == "pan"


def test_wheel_arrows_and_page_keys_scroll(qtbot, phantom_in_window):
    mw, _ = phantom_in_window
    view = viewer(mw).views["axial"]
    z = view.slice_index
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.slice_index == z + 1
    qtbot.keyClick(view, Qt.Key.Key_PageDown)
    assert view.slice_index == z + 1 - 10
    qtbot.keyClick(view, Qt.Key.Key_PageUp)
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.slice_index == z
    # mouse wheel over the view: one notch = one slice
    from PySide6.QtGui import QWheelEvent

    pos = QPointF(viewport_point(view, viewer(mw).state.cursor))
    ev = QWheelEvent(pos, QPointF(view.viewport().mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 120),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    from PySide6.QtWidgets import QApplication

    QApplication.sendEvent(view.viewport(), ev)
    assert view.slice_index == z + 1
    assert f"{z + 2}/48" in view.overlay_text()  # the overlay shows the 1-based slice index


def test_presets_set_exactly_their_levels(qtbot, phantom_in_window):
    mw, _ = phantom_in_window
    v = viewer(mw)
    actions = {a.data(): a for a in v.preset_group.actions()}
    assert set(actions) == set(PRESETS)
    for name, w in PRESETS.items():
        actions[name].trigger()
        assert v.state.window == w
        for view in v.views.values():
            assert view.levels == (w.lower, w.upper)
            # what is on screen is exactly the one window function applied to the slice
            assert np.array_equal(view.displayed_grey(), apply_window(view.image_data, w))
        assert f"L{w.level:g} W{w.width:g}" in v.views["axial"].overlay_text()
        assert (v.window_bar.level.value(), v.window_bar.width_box.value()) == (w.level, w.width)
    # the values, spelled out
    expect = {"brain": (40, 80), "subdural": (75, 215), "stroke": (32, 8), "bone": (480, 2500), "lung": (-600, 1500),
              "mediastinum": (50, 350), "soft-tissue": (40, 400), "liver": (90, 150)}
    for name, (lvl, wid) in expect.items():
        actions[name].trigger()
        assert v.views["coronal"].levels == (lvl - wid / 2, lvl + wid / 2)
    actions["ascii-brain"].trigger()
    assert v.views["axial"].levels == (-10, 70)
    actions["12-bit"].trigger()
    assert v.views["axial"].levels == (-1024, 3071)
    actions["icnet-roi"].trigger()
    assert v.views["axial"].levels == (-150, 150)
    # number keys: 1 = brain, 5 = bone, 0 = the 10th preset (12-bit)
    mw.activateWindow()
    for key, name in (("5", "bone"), ("1", "brain"), ("0", "12-bit")):
        assert actions[name].shortcut().toString() == key
        qtbot.keyClick(v.views["axial"], key)
        assert v.state.window == PRESETS[name], f"key {key}"


def test_hu_probe_reads_known_voxel_of_phantom(qtbot, phantom_in_window):
    mw, vol = phantom_in_window
    v = viewer(mw)
    arr = vol.array
    # a known voxel: the first bone voxel of the skull on the middle row of slice 24, and the centre of white matter
    k, j = 24, 64
    i_bone = int(np.argmax(arr[k, j] == ph.BONE))
    for (kk, jj, ii), hu in (((k, j, i_bone), ph.BONE), ((k, 64, 40), ph.WHITE)):
        assert arr[kk, jj, ii] == hu
        d = v.triplanar.display
        cursor = d.canonical_index((kk, jj, ii))
        v.state.set_cursor((cursor[0], 0, 0))  # show slice kk in the axial view
        view = v.views["axial"]
        got: list[dict] = []
        view.probed.connect(got.append)
        pos = viewport_point(view, cursor)
        ev = QMouseEvent(QMouseEvent.Type.MouseMove, QPointF(pos), QPointF(view.viewport().mapToGlobal(pos)),
                         Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
        from PySide6.QtWidgets import QApplication

        qtbot.wait(15)  # pyqtgraph drops mouse moves closer than 10 ms apart
        QApplication.sendEvent(view.viewport(), ev)
        qtbot.waitUntil(lambda: bool(got), timeout=2000)
        info = got[-1]
        assert info["hu"] == hu
        assert info["index_kji"] == (kk, jj, ii)
        assert np.allclose(info["lps_mm"], vol.index_to_lps(kk, jj, ii))
        assert f"{hu} HU" in view.probe_text() and f"k {kk}, j {jj}, i {ii}" in view.probe_text()
        assert f"{hu} HU" in mw.probe_label.text()  # the status bar shows it too
        view.probed.disconnect(got.append)


def test_thick_slab_mip(qtbot, main_window):
    vol = ph.head_phantom(noise_sd=30, seed=3)
    main_window.set_volume(vol, "noisy phantom")
    v = viewer(main_window)
    z = v.views["axial"].slice_index
    v.set_slab("mip", 9.0)  # 3 slices of 3 mm
    assert np.array_equal(v.views["axial"].image_data, vol.array[z - 1:z + 2].max(0))
    assert "MIP 9 mm (3 sl)" in v.views["axial"].overlay_text()
    v.set_slab("minip", 9.0)
    assert np.array_equal(v.views["axial"].image_data, vol.array[z - 1:z + 2].min(0))
    v.set_slab("mean", 15.0)
    assert np.allclose(v.views["axial"].image_data, vol.array[z - 2:z + 3].mean(0), atol=1e-3)
    v.set_slab("none")
    assert np.array_equal(v.views["axial"].image_data, vol.array[z])


def test_cine_plays_through_slices(qtbot, phantom_in_window):
    mw, _ = phantom_in_window
    v = viewer(mw)
    z0 = v.views["axial"].slice_index
    v.cine_fps.setValue(50)
    v.cine_button.setChecked(True)
    with qtbot.waitSignals([v.triplanar.cineStepped] * 3, timeout=3000):
        pass
    v.cine_button.setChecked(False)
    assert not v.triplanar.cine_playing
    assert v.views["axial"].slice_index != z0


def test_zoom_pan_and_reset(qtbot, phantom_in_window):
    mw, _ = phantom_in_window
    view = viewer(mw).views["axial"]
    full = view.vb.viewRange()
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    zoomed = view.vb.viewRange()
    assert zoomed[0][1] - zoomed[0][0] < 0.9 * (full[0][1] - full[0][0])
    vp = view.viewport()
    c = QPoint(vp.width() // 2, vp.height() // 2)
    drag(vp, Qt.MouseButton.MiddleButton, [c + QPoint(dx, 0) for dx in (0, 10, 30, 50)])
    panned = view.vb.viewRange()
    assert panned[0][0] < zoomed[0][0] - 1  # content moved right: the view range moved left
    qtbot.keyClick(view, Qt.Key.Key_Home)
    assert np.allclose(view.vb.viewRange(), full, atol=1e-6)


def test_compare_volume_with_itself_is_zero_everywhere(qtbot, phantom_in_window):
    mw, vol = phantom_in_window
    v = viewer(mw)
    assert v.compare_with(vol, name="same")
    assert v.in_compare
    assert v.compare.difference.shape == vol.shape and not v.compare.difference.any()
    for plane in ("axial", "coronal", "sagittal"):
        v.compare.set_plane(plane)
        assert not np.any(v.compare.view_diff.image_data)
        assert v.compare.view_diff.levels[0] == -v.compare.view_diff.levels[1]  # symmetric scale
    assert v.compare.view_diff.colorbar is not None
    # synced: moving the slice in A moves B and the difference
    v.compare.view_a.scroll(3)
    assert v.compare.view_b.slice_index == v.compare.view_a.slice_index == v.compare.view_diff.slice_index
    v.compare.view_a.zoom(2.0)
    ra, rb = np.array(v.compare.view_a.vb.viewRange()), np.array(v.compare.view_b.vb.viewRange())
    assert np.allclose(ra.mean(1), rb.mean(1), atol=0.5)  # same centre (mm)
    assert np.allclose(np.diff(ra, axis=1), np.diff(rb, axis=1), rtol=0.05)  # same zoom


def assert_same_scale_and_centre(compare) -> None:
    """A, B and A - B draw the image at one scale (screen pixels per mm, within 1 %), about one centre (mm),
    and the image item itself has the same size on screen in all three."""
    scales = compare.pixel_scales()
    ref = scales["A"]
    assert all(abs(s / ref - 1) < 0.01 for s in scales.values()), scales
    centres = np.array([np.mean(v.vb.viewRange(), axis=1) for v in compare.views.values()])
    assert np.allclose(centres, centres[0], atol=0.5), centres  # mm
    widths = [v.image.sceneBoundingRect().width() for v in compare.views.values()]
    assert max(widths) / min(widths) < 1.01, widths


def test_compare_views_share_one_scale_beside_the_colour_bar(qtbot, phantom_in_window):
    """The difference view is narrower (its colour bar) and its bar's axis grows after the first paint: the
    image must still be drawn at the size and place it has in A and B (it was drawn smaller)."""
    mw, vol = phantom_in_window
    v = viewer(mw)
    assert v.compare_with(vol.with_array((vol.array - 5).astype(np.int16)), name="minus5")
    qtbot.wait(50)
    c = v.compare
    assert c.view_diff.vb.width() < c.view_a.vb.width() - 20  # the bar takes width: the case that went wrong
    assert_same_scale_and_centre(c)
    fitted = c.pixel_scales()["A"]
    rows, cols = c.view_a.display.plane_shape("axial")
    rmm, cmm = c.view_a.display.pixel_mm("axial")
    assert cols * cmm * fitted <= c.view_diff.vb.width() + 1  # the whole image fits the narrowest view
    c.view_diff.colorbar.axis.setWidth(c.view_diff.colorbar.axis.width() + 40)  # wider tick labels
    qtbot.wait(50)
    assert_same_scale_and_centre(c)
    assert cols * cmm * c.pixel_scales()["A"] <= c.view_diff.vb.width() + 1  # refitted, not cut off
    c.view_b.zoom(2.0)
    qtbot.wait(20)
    assert_same_scale_and_centre(c)
    mw.resize(1000, 800)
    qtbot.wait(50)
    assert_same_scale_and_centre(c)
    for plane in ("coronal", "sagittal"):
        c.set_plane(plane)
        qtbot.wait(20)
        assert_same_scale_and_centre(c)
    qtbot.keyClick(c.view_diff, Qt.Key.Key_Home)  # Home in one view
    assert_same_scale_and_centre(c)


def test_compare_difference_values_and_shape_mismatch(qtbot, phantom_in_window):
    mw, vol = phantom_in_window
    v = viewer(mw)
    b = vol.with_array((vol.array - 7).astype(np.int16))
    assert v.compare_with(b, name="minus7")
    assert np.all(v.compare.difference == 7)
    v.exit_compare()
    other = ph.head_phantom(shape=(24, 64, 64), spacing=(3.0, 3.0, 6.0))
    assert not v.compare_with(other, name="coarse", resample=False)
    assert not v.in_compare
    text = mw.error_box.text()
    assert "shapes differ" in text and "48x128x128" in text and "24x64x64" in text
    mw.error_box.close()
    assert v.compare_with(other, name="coarse", resample=True)
    assert v.compare.volume_b.shape == vol.shape
    assert "resampled" in mw.statusBar().currentMessage()


def test_bad_file_shows_error_dialog_and_app_stays_usable(qtbot, main_window, tmp_path, sample_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"this is not a NIfTI file at all" * 10)
    msg = wait_error(qtbot, main_window, bad)
    box = main_window.error_box
    assert box is not None and box.isVisible()
    assert "broken.nii.gz" in box.text() and "broken.nii.gz" in msg
    assert "Traceback" not in box.text()
    box.close()
    missing = wait_error(qtbot, main_window, tmp_path / "nowhere.nii.gz")
    assert "no such file" in missing
    main_window.error_box.close()
    vol = open_and_wait(qtbot, main_window, sample_path)  # still usable
    assert viewer(main_window).triplanar.volume is vol
    assert main_window.volume is vol


def test_settings_remember_recent_files_and_bindings(qtbot, settings, sample_path, shared_data):
    from ctstudio.app.main_window import MainWindow

    mw = MainWindow(settings)
    qtbot.addWidget(mw)
    mw.show()
    open_and_wait(qtbot, mw, sample_path)
    chest = shared_data / "chest-ct-siemens-kernel-pairs/test1_B30.mha"
    open_and_wait(qtbot, mw, chest)
    viewer(mw).set_window_button("middle")
    mw.close()
    settings.sync()
    mw2 = MainWindow(settings)
    qtbot.addWidget(mw2)
    assert mw2.recent_files()[:2] == [str(chest.resolve()), str(sample_path.resolve())]
    labels = [a.text() for a in mw2.recent_menu.actions()]
    assert any("test1_B30.mha" in t for t in labels) and any("headsq_hu.nii.gz" in t for t in labels)
    assert viewer(mw2).bindings.window_button == "middle"
    # a recent entry opens its file
    act = next(a for a in mw2.recent_menu.actions() if "headsq_hu" in a.text())
    got = []
    mw2.volume_changed.connect(got.append)
    act.trigger()
    qtbot.waitUntil(lambda: bool(got), timeout=30000)
    assert got[0].shape == (93, 64, 64)
    mw2.close()


def test_drag_and_drop_opens(qtbot, main_window, sample_path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(sample_path))])
    got = []
    main_window.volume_changed.connect(got.append)
    ev = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    main_window.dropEvent(ev)
    qtbot.waitUntil(lambda: bool(got), timeout=30000)
    assert got[0].shape == (93, 64, 64)


def test_dicom_folder_with_two_series_asks_and_opens_the_chosen(qtbot, main_window, tmp_path):
    from ctstudio.io import write_volume

    folder = tmp_path / "two_series"
    folder.mkdir()
    small = ph.head_phantom(shape=(6, 32, 32), spacing=(6.0, 6.0, 8.0))
    big = ph.head_phantom(shape=(10, 32, 32), spacing=(6.0, 6.0, 5.0))
    write_volume(small, folder / "s1", format="dicom")
    write_volume(big, folder / "s2", format="dicom")
    asked = []

    def choose(path, series):
        asked.append(series)
        return next(s["series_instance_uid"] for s in series if s["n_files"] == 6)

    main_window.choose_series = choose
    vol = open_and_wait(qtbot, main_window, folder)
    assert len(asked) == 1 and len(asked[0]) == 2
    assert vol.shape == (6, 32, 32)
    assert np.array_equal(vol.array, small.array)


def test_save_as_nifti_and_dicom_round_trip(qtbot, phantom_in_window, tmp_path):
    from ctstudio.io import read_volume

    mw, vol = phantom_in_window
    for target, fmt in ((tmp_path / "out.nii.gz", "nifti"), (tmp_path / "out_dicom", "dicom")):
        with qtbot.waitSignal(mw.saved, timeout=60000):
            mw.save_as(str(target), format=fmt)
        back = read_volume(target)
        assert np.array_equal(back.array, vol.array)
        assert np.allclose(back.spacing, vol.spacing, atol=1e-4)
