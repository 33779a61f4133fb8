"""CompareView: volume A, volume B and the difference A - B, side by side, fully synced.

The three views share one ViewerState (slice, crosshair, window) and their view boxes are linked
(zoom and pan). The difference view shows A - B in HU with a diverging colour map, symmetric
levels and a scale bar. Volumes of different shapes are refused with a clear message, or
resampled onto A's grid when the caller asks (``resample=True``). The three views draw the image at one
scale (mm per screen pixel) about one centre, although the difference view is narrower (its colour bar).
A running job can show the part it has finished outlined over B and A - B (:meth:`CompareView.set_region_mask`).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QTimer
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


#: colour of a finished region: a light tint inside, an opaque outline
REGION_RGB = (64, 255, 128)


def region_rgba(mask: np.ndarray, tint: int = 45) -> np.ndarray:
    """(h, w, 4) uint8 overlay of a 2D boolean ``mask``: ``REGION_RGB`` at alpha ``tint`` inside, opaque on its
    outline (mask pixels with a 4-neighbour outside the mask or at the image edge), transparent elsewhere."""
    m = np.asarray(mask, dtype=bool)
    inner = np.zeros_like(m)
    if m.shape[0] > 2 and m.shape[1] > 2:
        inner[1:-1, 1:-1] = (m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:])
    out = np.zeros(m.shape + (4,), dtype=np.uint8)
    out[m, :3] = REGION_RGB
    out[m, 3] = tint
    out[m & ~inner, 3] = 255
    return out


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
        # zoom/pan sync: the same centre (mm) and the same mm per screen pixel in all three. pyqtgraph's axis
        # links would fight the locked aspect when the views differ in size, and the difference view always
        # does: its colour bar takes width, and the bar's axis grows after its first paint (tick labels),
        # which resizes that view box alone, without the widget resizing. So the shared scale and centre are
        # kept here and re-applied to any view box that changes size (``sigResized``).
        self._syncing = False
        self._scale: float | None = None  # mm per screen pixel, shared by the three views
        self._centre: tuple[float, float] | None = None  # view centre in mm, shared
        self._refit = QTimer(self)
        self._refit.setSingleShot(True)
        self._refit.setInterval(0)
        self._refit.timeout.connect(self._refit_if_auto)
        for v in (self.view_a, self.view_b, self.view_diff):
            v.fit_on_resize = False
            v.resized.connect(self._refit.start)
            v.vb.sigResized.connect(self._view_resized)
            v.vb.sigRangeChanged.connect(lambda vb, _r, _c=None: self._sync_from(vb))
        lay.addWidget(split, 1)
        # the finished part of a running job, outlined over B and A - B (see set_region_mask)
        self._region: DisplayVolume | None = None
        self._region_items: dict[str, pg.ImageItem] = {}
        self.state.cursorChanged.connect(lambda *_: self._draw_region())

    def reset_view(self) -> None:
        """Fit the whole image in all three views at one common scale (mm per pixel), centred.

        The scale is the largest of the three views' own fits, so the image fits the narrowest view (the
        difference view, beside its colour bar) and is drawn at that same size in the other two."""
        scales = [s for s in (v.fit_scale() for v in self.views.values()) if s]
        if not scales:
            return
        rows, cols = self.view_a.display.plane_shape(self.view_a.plane)
        rmm, cmm = self.view_a.display.pixel_mm(self.view_a.plane)
        self._apply(max(scales), (cols * cmm / 2, rows * rmm / 2))
        for v in self.views.values():
            v._auto_fit = True  # until the user zooms or pans one of them

    def pixel_scales(self) -> dict[str, float]:
        """Screen pixels per mm of each view (the scene-to-view transform's scale along x)."""
        out = {}
        for name, v in self.views.items():
            p0, p1 = v.vb.mapViewToScene(QPointF(0.0, 0.0)), v.vb.mapViewToScene(QPointF(100.0, 0.0))
            out[name] = (p1.x() - p0.x()) / 100.0
        return out

    def _apply(self, scale: float, centre: tuple[float, float], skip=None) -> None:
        """Show ``scale`` mm per pixel about ``centre`` (mm) in every view (but ``skip``, a view box)."""
        self._scale, self._centre = float(scale), (float(centre[0]), float(centre[1]))
        cx, cy = self._centre
        self._syncing = True
        try:
            for v in self.views.values():
                if v.vb is skip:
                    continue
                hw, hh = scale * max(1.0, v.vb.width()) / 2, scale * max(1.0, v.vb.height()) / 2
                v.vb.setRange(xRange=(cx - hw, cx + hw), yRange=(cy - hh, cy + hh), padding=0)
        finally:
            self._syncing = False

    def _refit_if_auto(self) -> None:
        if self.view_a.display is not None and all(v._auto_fit for v in self.views.values()):
            self.reset_view()

    def _view_resized(self, vb) -> None:
        """One view box changed size: refit all three (never zoomed) or give it the shared scale and centre."""
        if self._syncing or self.view_a.display is None:
            return
        if all(v._auto_fit for v in self.views.values()):
            self._refit.start()
        if self._scale is not None:
            self._apply(self._scale, self._centre)

    def _sync_from(self, src) -> None:
        if self._syncing:
            return
        (x0, x1), (y0, y1) = src.viewRange()
        w = max(1.0, src.width())
        self._apply((x1 - x0) / w, ((x0 + x1) / 2, (y0 + y1) / 2), skip=src)

    # -- the finished region of a running job -------------------------------------------------------------
    def set_region_mask(self, mask: np.ndarray | None) -> None:
        """Tint and outline ``mask`` over B and A - B: e.g. the part of the volume a running conversion has
        finished. ``mask`` is boolean in A's array order (z, y, x) and shape; it is read, not copied, so a
        caller may fill it in place and call this again to redraw. ``None`` removes the overlay."""
        if mask is None or self.volume_a is None:
            self._region = None
        else:
            if mask.shape != self.volume_a.shape:
                raise ValueError(f"the region mask has shape {mask.shape}, A {self.volume_a.shape}")
            self._region = DisplayVolume(self.volume_a, mask)
        self._draw_region()

    def region_image(self, name: str = "B") -> np.ndarray | None:
        """The RGBA overlay on view ``name`` now (None when there is none): for tests and screenshots."""
        item = self._region_items.get(name)
        return None if item is None or not item.isVisible() or item.image is None else item.image

    def _draw_region(self) -> None:
        for name in ("B", "A-B"):
            view = self.views[name]
            item = self._region_items.get(name)
            if self._region is None or view.display is None:
                if item is not None:
                    item.hide()
                continue
            if item is None:
                item = pg.ImageItem(axisOrder="row-major")
                item.setZValue(10)
                view.vb.addItem(item)
                self._region_items[name] = item
            m = self._region.plane_image(view.plane, view.slice_index)
            item.setImage(region_rgba(m), autoLevels=False, levels=(0, 255))
            rmm, cmm = view.display.pixel_mm(view.plane)
            item.setRect(QRectF(0, 0, m.shape[1] * cmm, m.shape[0] * rmm))
            item.show()

    @property
    def views(self) -> dict[str, SliceView]:
        return {"A": self.view_a, "B": self.view_b, "A-B": self.view_diff}

    def set_plane(self, plane: str) -> None:
        for v in self.views.values():
            v.set_plane(plane)
        self.reset_view()
        self._draw_region()
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
        self._region = None
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
        self._draw_region()
        text = f"A - B: max |diff| {absmax:g} HU, colour scale +-{self.scale_hu:g} HU"
        if how:
            text = f"{how}; {text}"
        self.info.setText(text)
        return text
