"""TriPlanar: three linked slice views (axial, coronal, sagittal) plus an optional 3D view, and cine.

The three :class:`~ctstudio.app.widgets.slice_view.SliceView` share one
:class:`~ctstudio.app.widgets.state.ViewerState`: clicking or dragging in one moves the crosshair,
and the other two follow; window and thick-slab settings are shared too.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from ctstudio.imaging.display_geometry import PLANE_SPECS, PLANES, DisplayVolume
from ctstudio.app.widgets.slice_view import Bindings, SliceView
from ctstudio.app.widgets.state import ViewerState
from ctstudio.imaging.window import PRESETS, Window
from ctstudio.volume import Volume


def default_window(volume: Volume) -> Window:
    """A sensible first window: brain for a head whose inside is mostly brain-like tissue, else soft tissue."""
    md = volume.metadata
    text = f"{md.body_part} {md.series_description}".lower()
    if any(w in text for w in ("brain", "head", "neuro", "cranial")):
        return PRESETS["brain"]
    a = volume.array[:: max(1, volume.shape[0] // 32), ::4, ::4]
    body = np.count_nonzero((a > -200) & (a < 200))
    brainlike = np.count_nonzero((a >= 15) & (a <= 50))
    fov = volume.shape[2] * volume.spacing[0]
    if fov <= 280 and body and brainlike / body > 0.5:
        return PRESETS["brain"]
    return PRESETS["soft-tissue"]


class TriPlanar(QWidget):
    """Axial | coronal on top, sagittal | 3D below. Takes a Volume; knows nothing of models or studies."""

    probed = Signal(dict)
    #: the cine frame advanced (plane, slice index)
    cineStepped = Signal(str, int)

    def __init__(self, parent=None, state: ViewerState | None = None, bindings: Bindings | None = None) -> None:
        super().__init__(parent)
        self.state = state if state is not None else ViewerState(self)
        self.bindings = bindings or Bindings()
        self.display: DisplayVolume | None = None
        self.volume: Volume | None = None
        self.views: dict[str, SliceView] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        for plane, (r, c) in zip(PLANES, ((0, 0), (0, 1), (1, 0))):
            v = SliceView(plane, self.state, self, bindings=self.bindings)
            v.activated.connect(self._set_active)
            v.probed.connect(self.probed)
            self.views[plane] = v
            grid.addWidget(v, r, c)
        self.panel3d = QWidget(self)
        self._panel_layout = QVBoxLayout(self.panel3d)
        self._panel_layout.setContentsMargins(0, 0, 0, 0)
        self.placeholder3d = QLabel("3D view off (View > 3D view)")
        self.placeholder3d.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder3d.setStyleSheet("color: #aaa; background: #111;")
        self._panel_layout.addWidget(self.placeholder3d)
        grid.addWidget(self.panel3d, 1, 1)
        grid.setRowStretch(0, 1)
        grid.setRowStretch(1, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        self.view3d = None
        self.active_plane = "axial"
        self.cine_timer = QTimer(self)
        self.cine_timer.timeout.connect(self._cine_tick)
        self.cine_fps = 10.0
        # a stream of updates (a slice a second while generating) re-renders the 3D view at most this often:
        # a software-rendered volume takes far longer than a slice, and the window must keep up with the job
        self.render3d_interval_ms = 1000
        self._pending3d: DisplayVolume | None = None
        self._render3d_timer = QTimer(self)
        self._render3d_timer.setSingleShot(True)
        self._render3d_timer.timeout.connect(self.flush_3d)

    # -- volume -------------------------------------------------------------------------------------
    def set_volume(self, volume: Volume | None, window: Window | None = None, keep_cursor: bool = False) -> None:
        self.stop_cine()
        self.volume = volume
        self.display = DisplayVolume(volume) if volume is not None else None
        old = self.state.cursor
        for v in self.views.values():
            v.set_volume(self.display, reset_view=True)
        if self.display is not None:
            self.state.set_shape(self.display.shape, cursor=old if keep_cursor else None)
            self.state.set_window(window or default_window(volume))
        if self.view3d is not None:
            self._pending3d = None
            self.view3d.set_volume(self.display)

    def update_volume(self, volume: Volume, changed_slices=None) -> None:
        """Show ``volume`` in place of the one shown, as a stream of new slices does, keeping the view.

        ``volume`` is the shown volume with some slices changed (``changed_slices``: indices along
        ``volume.array``'s first axis; ``None`` = any may have changed) or the shown volume grown or
        re-gridded. The crosshair stays on the same patient position (LPS), the window / level, the
        zoom and pan, the thick slab, the cine and the 3D camera stay as they are; only the views whose
        slice shows a changed voxel are re-sliced, and the 3D view updates its image data in place.
        With nothing shown yet this is :meth:`set_volume`.
        """
        if self.display is None or volume is None:
            self.set_volume(volume)
            return
        old = self.display
        lps = old.lps(self.state.cursor)
        new = DisplayVolume(volume)
        changed = None
        if changed_slices is not None and new.shape == old.shape:
            axis = new.canonical_axis_of(0)
            n = new.shape[axis]
            changed = (axis, {n - 1 - int(k) if new.flip[axis] else int(k) for k in changed_slices})
        cursor = new.cursor_at_lps(lps)
        self.volume = volume
        self.display = new
        for v in self.views.values():
            v.update_display(new, cursor, changed)
        self.state.set_shape(new.shape, cursor=cursor)
        if self.view3d is not None:
            self._pending3d = new
            if not self._render3d_timer.isActive():
                self._render3d_timer.start(self.render3d_interval_ms)

    def flush_3d(self) -> None:
        """Bring the 3D view up to the latest update now (it follows a stream of updates at most once a
        :attr:`render3d_interval_ms`)."""
        self._render3d_timer.stop()
        pending, self._pending3d = self._pending3d, None
        if pending is not None and self.view3d is not None and pending is self.display:
            self.view3d.update_volume(pending)

    def set_bindings(self, bindings: Bindings) -> None:
        self.bindings = bindings
        for v in self.views.values():
            v.bindings = bindings

    def reset_views(self) -> None:
        for v in self.views.values():
            v.reset_view()

    def _set_active(self, plane: str) -> None:
        self.active_plane = plane

    # -- 3D -------------------------------------------------------------------------------------------
    def enable_3d(self, on: bool, preset: str = "bone") -> str | None:
        """Show or hide the VTK 3D view; returns a reason when it cannot be shown."""
        from ctstudio.app.widgets.volume3d import Volume3D, can_embed_vtk

        if on and self.view3d is None:
            if not can_embed_vtk():
                self.placeholder3d.setText("3D view needs a display (this Qt platform is offscreen)")
                return "the 3D view needs a real display"
            self.view3d = Volume3D(self.panel3d, preset=preset)
            self._panel_layout.addWidget(self.view3d)
            self.placeholder3d.hide()
            self.view3d.set_volume(self.display)
        elif not on and self.view3d is not None:
            self.view3d.shutdown()
            self._panel_layout.removeWidget(self.view3d)
            self.view3d.deleteLater()
            self.view3d = None
            self.placeholder3d.setText("3D view off (View > 3D view)")
            self.placeholder3d.show()
        return None

    # -- cine ---------------------------------------------------------------------------------------
    def play_cine(self, fps: float | None = None, plane: str | None = None) -> None:
        if self.display is None:
            return
        if fps:
            self.cine_fps = float(fps)
        if plane:
            self.active_plane = plane
        self.cine_timer.start(max(1, int(round(1000.0 / self.cine_fps))))

    def stop_cine(self) -> None:
        self.cine_timer.stop()

    @property
    def cine_playing(self) -> bool:
        return self.cine_timer.isActive()

    def _cine_tick(self) -> None:
        if self.display is None:
            self.stop_cine()
            return
        axis = PLANE_SPECS[self.active_plane].fixed
        cur = list(self.state.cursor)
        cur[axis] = (cur[axis] + 1) % self.display.shape[axis]
        self.state.set_cursor(cur)
        self.cineStepped.emit(self.active_plane, cur[axis])

    def shutdown(self) -> None:
        self.stop_cine()
        if self.view3d is not None:
            self.view3d.shutdown()
