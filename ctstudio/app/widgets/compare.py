"""CompareView: volume A, volume B and the difference A - B, side by side, fully synced.

The three views share one ViewerState (slice, crosshair, window) and their view boxes are linked
(zoom and pan). The difference view shows A - B in HU with a diverging colour map, symmetric
levels and a scale bar. Volumes of different shapes are refused with a clear message, or
resampled onto A's grid when the caller asks (``resample=True``).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from ctstudio.imaging.display_geometry import PLANES, DisplayVolume, difference_array, resample_to
from ctstudio.app.widgets.slice_view import Bindings, SliceView
from ctstudio.app.widgets.state import ViewerState
from ctstudio.errors import InputError
from ctstudio.volume import Volume


def shape_mismatch_message(a: Volume, b: Volume, name_a: str = "A", name_b: str = "B") -> str:
    return (f"cannot compare {name_a} and {name_b}: their shapes differ "
            f"({name_a} {a.shape[0]}x{a.shape[1]}x{a.shape[2]}, {name_b} {b.shape[0]}x{b.shape[1]}x{b.shape[2]} "
            f"slices x rows x columns)")


class CompareView(QWidget):
    """A | B | A - B for one plane at a time (choose the plane in the combo)."""

    def __init__(self, parent=None, state: ViewerState | None = None, bindings: Bindings | None = None) -> None:
        super().__init__(parent)
        self.state = state if state is not None else ViewerState(self)
        self.bindings = bindings or Bindings()
        self.volume_a: Volume | None = None
        self.volume_b: Volume | None = None
        self.difference: np.ndarray | None = None
        self.scale_hu: float = 1.0
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Plane"))
        self.plane_combo = QComboBox()
        self.plane_combo.addItems(list(PLANES))
        self.plane_combo.currentTextChanged.connect(self.set_plane)
        bar.addWidget(self.plane_combo)
        self.info = QLabel("")
        bar.addWidget(self.info, 1)
        lay.addLayout(bar)
        split = QSplitter()
        self.view_a = SliceView("axial", self.state, self, bindings=self.bindings, title="A")
        self.view_b = SliceView("axial", self.state, self, bindings=self.bindings, title="B")
        self.view_diff = SliceView("axial", self.state, self, bindings=self.bindings, diverging=True, title="A - B")
        for v in (self.view_a, self.view_b, self.view_diff):
            split.addWidget(v)
        # zoom/pan sync: same centre and same mm per screen pixel in all three (pyqtgraph's axis
        # links would fight the locked aspect when the views differ in size, e.g. the colour bar)
        self._syncing = False
        self._refit = QTimer(self)
        self._refit.setSingleShot(True)
        self._refit.setInterval(0)
        self._refit.timeout.connect(self._refit_if_auto)
        for v in (self.view_a, self.view_b, self.view_diff):
            v.fit_on_resize = False
            v.resized.connect(self._refit.start)
            v.vb.sigRangeChanged.connect(lambda vb, _r, _c=None: self._sync_from(vb))
        self._auto_fit = True
        lay.addWidget(split, 1)

    def reset_view(self) -> None:
        """Fit the whole image in all three views at one common scale (mm per pixel), centred."""
        scales = [s for s in (v.fit_scale() for v in self.views.values()) if s]
        if not scales:
            return
        scale = max(scales)
        rows, cols = self.view_a.display.plane_shape(self.view_a.plane)
        rmm, cmm = self.view_a.display.pixel_mm(self.view_a.plane)
        cx, cy = cols * cmm / 2, rows * rmm / 2
        self._syncing = True
        try:
            for v in self.views.values():
                hw, hh = scale * max(1.0, v.vb.width()) / 2, scale * max(1.0, v.vb.height()) / 2
                v.vb.setRange(xRange=(cx - hw, cx + hw), yRange=(cy - hh, cy + hh), padding=0)
        finally:
            self._syncing = False
        for v in self.views.values():
            v._auto_fit = True  # until the user zooms or pans one of them

    def _refit_if_auto(self) -> None:
        if self.view_a.display is not None and all(v._auto_fit for v in self.views.values()):
            self.reset_view()

    def _sync_from(self, src) -> None:
        if self._syncing:
            return
        (x0, x1), (y0, y1) = src.viewRange()
        w = max(1.0, src.width())
        scale = (x1 - x0) / w  # mm per pixel
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        self._syncing = True
        try:
            for v in (self.view_a, self.view_b, self.view_diff):
                if v.vb is src:
                    continue
                hw, hh = scale * max(1.0, v.vb.width()) / 2, scale * max(1.0, v.vb.height()) / 2
                v.vb.setRange(xRange=(cx - hw, cx + hw), yRange=(cy - hh, cy + hh), padding=0)
        finally:
            self._syncing = False

    @property
    def views(self) -> dict[str, SliceView]:
        return {"A": self.view_a, "B": self.view_b, "A-B": self.view_diff}

    def set_plane(self, plane: str) -> None:
        for v in self.views.values():
            v.set_plane(plane)
        self.reset_view()
        if self.plane_combo.currentText() != plane:
            self.plane_combo.setCurrentText(plane)

    def set_volumes(self, a: Volume, b: Volume, resample: bool = False, names: tuple[str, str] = ("A", "B")) -> str:
        """Show A, B and A - B. Different shapes: InputError, or B resampled onto A when ``resample``.

        Returns a one-line description for the status bar.
        """
        how = ""
        if a.shape != b.shape:
            if not resample:
                raise InputError(shape_mismatch_message(a, b, *names),
                                 hint="choose 'Resample B onto A' to compare them anyway")
            b, how = resample_to(b, a)
        diff = difference_array(a, b)
        self.volume_a, self.volume_b, self.difference = a, b, diff
        absmax = float(np.abs(diff).max()) if diff.size else 0.0
        # scale: the 99.5th percentile of |A - B| where they differ, so one outlier does not wash it out
        nz = np.abs(diff[diff != 0])
        scale = float(np.percentile(nz, 99.5)) if nz.size else 0.0
        self.scale_hu = max(1.0, round(scale))
        disp_a = DisplayVolume(a)
        self.view_a.title = f"A: {names[0]}"
        self.view_b.title = f"B: {names[1]}"
        self.view_a.set_volume(disp_a)
        self.view_b.set_volume(DisplayVolume(b))
        self.view_diff.set_volume(DisplayVolume(a, diff))
        self.view_diff.set_fixed_levels(-self.scale_hu, self.scale_hu)
        self.state.set_shape(disp_a.shape, cursor=self.state.cursor)
        self.reset_view()
        text = f"A - B: max |diff| {absmax:g} HU, colour scale +-{self.scale_hu:g} HU"
        if how:
            text = f"{how}; {text}"
        self.info.setText(text)
        return text
