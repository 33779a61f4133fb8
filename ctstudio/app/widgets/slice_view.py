"""SliceView: one pyqtgraph view of one plane (axial, coronal or sagittal) of a Volume.

* physical aspect: the image is laid out in millimetres (pixel size from the spacing), aspect locked;
* radiological orientation and R/L/A/P/S/I labels (see :mod:`ctstudio.app.widgets.display`);
* the crosshair of a shared :class:`~ctstudio.app.widgets.state.ViewerState` (click or drag to move it);
* mouse wheel / arrow keys / PgUp / PgDn scroll slices; right-drag changes window/level (the
  button is configurable, see :class:`Bindings`); middle-drag or Shift+left-drag pans;
  Ctrl+wheel or +/- zoom; Home or R resets the view;
* an HU probe under the cursor (HU, voxel index, LPS mm) and an overlay with slice index and W/L;
* thick slab (MIP / MinIP / mean) from the state;
* a *diverging* mode for difference maps: fixed symmetric levels, a diverging colour map and a scale bar.

Display path: the int16 slice goes to pyqtgraph with explicit levels (window lower/upper). A
W/L change only sets new levels; a cursor move re-slices only the views whose slice changed.
Measured in bench/viewer_bench.py against a float + auto-level baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QLabel

from ctstudio.app.widgets.display import PLANE_SPECS, DisplayVolume
from ctstudio.app.widgets.state import ViewerState
from ctstudio.volume import Volume

#: Plane colours (3D Slicer's convention): the crosshair line that marks a plane has its colour.
PLANE_COLOURS = {"axial": "#e05a5a", "coronal": "#5ab45a", "sagittal": "#e0c24a"}
_AXIS_PLANE = {0: "axial", 1: "coronal", 2: "sagittal"}

BUTTONS = {"left": Qt.MouseButton.LeftButton, "right": Qt.MouseButton.RightButton,
           "middle": Qt.MouseButton.MiddleButton}


@dataclass
class Bindings:
    """Mouse bindings. ``window_button`` drags window/level, ``pan_button`` pans; the remaining
    one of right/middle zooms. Left always moves the crosshair (Shift+left pans)."""

    window_button: str = "right"
    pan_button: str = "middle"

    def role(self, button, modifiers) -> str:
        if button == Qt.MouseButton.LeftButton:
            if modifiers & Qt.KeyboardModifier.ShiftModifier:
                return "pan"
            if modifiers & Qt.KeyboardModifier.ControlModifier:
                return "zoom"
            return "cursor" if self.window_button != "left" else "window"
        if button == BUTTONS.get(self.window_button):
            return "window"
        if button == BUTTONS.get(self.pan_button):
            return "pan"
        return "zoom"

    @classmethod
    def from_settings(cls, settings) -> "Bindings":
        if settings is None:
            return cls()
        wb = str(settings.value("viewer/window_button", "right"))
        wb = wb if wb in BUTTONS else "right"
        pb = "middle" if wb != "middle" else "right"
        return cls(window_button=wb, pan_button=pb)


class _SliceViewBox(pg.ViewBox):
    """A ViewBox whose mouse does what a CT reader expects (see module doc)."""

    def __init__(self, owner: "SliceView") -> None:
        super().__init__(invertY=True, lockAspect=True, enableMenu=False, defaultPadding=0.01)
        self.owner = owner

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (Qt naming)
        if ev.button() == Qt.MouseButton.LeftButton and self.owner.bindings.role(ev.button(), ev.modifiers()) == "cursor":
            ev.accept()
            self.owner._point_at(self.mapSceneToView(ev.scenePos()))
        else:
            ev.accept()  # no context menu: right button is window/level

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802
        role = self.owner.bindings.role(ev.button(), ev.modifiers())
        ev.accept()
        self.owner.activated.emit(self.owner.plane)
        if role == "cursor":
            self.owner._point_at(self.mapSceneToView(ev.scenePos()))
        elif role == "pan":
            self.owner._auto_fit = False
            p0, p1 = self.mapToView(ev.lastPos()), self.mapToView(ev.pos())
            self.translateBy(x=p0.x() - p1.x(), y=p0.y() - p1.y())
        elif role == "window":
            d = ev.screenPos() - ev.lastScreenPos()
            self.owner._drag_window(d.x(), d.y())
        else:  # zoom
            self.owner._auto_fit = False
            dy = (ev.screenPos() - ev.lastScreenPos()).y()
            s = math.exp(dy * 0.01)
            self.scaleBy((s, s), center=self.mapToView(ev.buttonDownPos()))

    def wheelEvent(self, ev, axis=None) -> None:  # noqa: N802
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.owner._auto_fit = False
            super().wheelEvent(ev, axis)
            return
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        ev.accept()
        if delta:
            self.owner.activated.emit(self.owner.plane)
            self.owner.scroll(1 if delta > 0 else -1)


def _overlay_label(parent, align=Qt.AlignmentFlag.AlignLeft) -> QLabel:
    lab = QLabel(parent)
    lab.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
    lab.setStyleSheet("color: #e8e8e8; background: rgba(0, 0, 0, 150); font-size: 11px;")
    lab.setAlignment(align)
    return lab


class SliceView(pg.GraphicsLayoutWidget):
    """One plane of a Volume. Takes a Volume (or DisplayVolume); knows nothing of models or studies."""

    #: the HU probe: {"hu", "index_kji", "lps_mm", "cursor", "plane"}
    probed = Signal(dict)
    #: the user interacted with this view (scroll, click, drag): its plane name
    activated = Signal(str)
    #: the widget was resized (CompareView refits its three views together)
    resized = Signal()

    def __init__(self, plane: str = "axial", state: ViewerState | None = None, parent=None,
                 bindings: Bindings | None = None, diverging: bool = False, title: str = "") -> None:
        super().__init__(parent)
        if plane not in PLANE_SPECS:
            raise ValueError(f"plane must be one of {tuple(PLANE_SPECS)}, got {plane!r}")
        self.setBackground("k")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.viewport().setMouseTracking(True)  # hover events feed the HU probe
        self.plane = plane
        self.title = title
        self._owns_state = state is None
        self.state = state if state is not None else ViewerState(self)
        self.bindings = bindings or Bindings()
        self.diverging = diverging
        self.display: DisplayVolume | None = None
        self._shown: tuple | None = None  # (slice index, slab) on screen
        self._geom: tuple | None = None
        self.image_data: np.ndarray | None = None  # the 2D array last sent to the screen
        self._fixed_levels: tuple[float, float] | None = None
        self._auto_fit = True
        #: refit on resize until the user zooms or pans (CompareView turns this off and fits all three itself)
        self.fit_on_resize = True

        self.vb = _SliceViewBox(self)
        self.ci.addItem(self.vb, row=0, col=0)
        self.ci.layout.setContentsMargins(0, 0, 0, 0)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        self.colorbar = None
        if diverging:
            cmap = pg.colormap.get("CET-D1")
            self.image.setColorMap(cmap)
            self.colorbar = pg.ColorBarItem(values=(-1, 1), colorMap=cmap, interactive=False,
                                            label="A - B (HU)", width=14)
            self.colorbar.setImageItem(self.image)
            self.ci.addItem(self.colorbar, row=0, col=1)
        self.vline = pg.InfiniteLine(angle=90, movable=False)
        self.hline = pg.InfiniteLine(angle=0, movable=False)
        spec = PLANE_SPECS[plane]
        self.vline.setPen(pg.mkPen(PLANE_COLOURS[_AXIS_PLANE[spec.cols]], width=1))
        self.hline.setPen(pg.mkPen(PLANE_COLOURS[_AXIS_PLANE[spec.rows]], width=1))
        for line in (self.vline, self.hline):
            line.setZValue(10)
            self.vb.addItem(line, ignoreBounds=True)

        self.info_label = _overlay_label(self)
        self.probe_label = _overlay_label(self)
        self.orient_labels = {k: _overlay_label(self, Qt.AlignmentFlag.AlignCenter) for k in ("left", "right", "top", "bottom")}
        for lab in self.orient_labels.values():
            lab.setStyleSheet("color: #ffd24a; background: transparent; font-size: 13px; font-weight: bold;")
        self._set_orientation_labels()

        self.state.cursorChanged.connect(self._on_cursor)
        self.state.windowChanged.connect(self._on_window)
        self.state.slabChanged.connect(self._on_slab)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.setMinimumSize(160, 160)

    # -- public API -------------------------------------------------------------------------------
    def set_volume(self, volume: Volume | DisplayVolume | None, reset_view: bool = True) -> None:
        if isinstance(volume, Volume):
            volume = DisplayVolume(volume)
        self.display = volume
        self._shown = None
        self._geom = None
        if volume is None:
            self.image.clear()
            self.image_data = None
            self._update_overlay()
            return
        if self._owns_state:
            self.state.set_shape(volume.shape)
        self.refresh()
        if reset_view:
            self.reset_view()

    def set_plane(self, plane: str) -> None:
        if plane not in PLANE_SPECS:
            raise ValueError(f"plane must be one of {tuple(PLANE_SPECS)}, got {plane!r}")
        self.plane = plane
        spec = PLANE_SPECS[plane]
        self.vline.setPen(pg.mkPen(PLANE_COLOURS[_AXIS_PLANE[spec.cols]], width=1))
        self.hline.setPen(pg.mkPen(PLANE_COLOURS[_AXIS_PLANE[spec.rows]], width=1))
        self._set_orientation_labels()
        self._shown = None
        self._geom = None
        if self.display is not None:
            self.refresh()
            self.reset_view()

    def set_fixed_levels(self, lower: float, upper: float) -> None:
        """Levels that ignore the shared window (difference maps)."""
        self._fixed_levels = (float(lower), float(upper))
        if self.colorbar is not None:
            self.colorbar.setLevels((lower, upper))
        self.image.setLevels(self._fixed_levels)
        self._update_overlay()

    @property
    def slice_index(self) -> int:
        return int(self.state.cursor[PLANE_SPECS[self.plane].fixed])

    @property
    def n_slices(self) -> int:
        return self.display.n_slices(self.plane) if self.display is not None else 0

    @property
    def levels(self) -> tuple[float, float]:
        if self._fixed_levels is not None:
            return self._fixed_levels
        w = self.state.window
        return (w.lower, w.upper)

    def scroll(self, n: int) -> None:
        """Move ``n`` slices through this view's plane (the other views follow the crosshair)."""
        self.state.step(PLANE_SPECS[self.plane].fixed, n)

    def fit_scale(self) -> float | None:
        """mm per screen pixel that fits the whole image into this view."""
        if self.display is None:
            return None
        rows, cols = self.display.plane_shape(self.plane)
        rmm, cmm = self.display.pixel_mm(self.plane)
        return max(cols * cmm / max(1.0, self.vb.width()), rows * rmm / max(1.0, self.vb.height())) * 1.02

    def reset_view(self) -> None:
        if self.display is not None:
            rows, cols = self.display.plane_shape(self.plane)
            rmm, cmm = self.display.pixel_mm(self.plane)
            self.vb.setRange(QRectF(0, 0, cols * cmm, rows * rmm), padding=0.01)
        self._auto_fit = True  # keep fitting on resize until the user zooms or pans

    def zoom(self, factor: float) -> None:
        """Zoom in (factor > 1) or out about the view centre."""
        self._auto_fit = False
        self.vb.scaleBy((1.0 / factor, 1.0 / factor))

    def probe_at(self, row: float, col: float) -> dict | None:
        """The HU probe at screen pixel (row, col) of the current slice; None outside the image."""
        if self.display is None:
            return None
        rows, cols = self.display.plane_shape(self.plane)
        if not (0 <= row < rows and 0 <= col < cols):
            return None
        cursor = self.display.from_screen(self.plane, row, col, self.state.cursor)
        info = self.display.probe(cursor)
        info["plane"] = self.plane
        if self.state.slab[0] != "none" and self.image_data is not None and not self.diverging:
            info["slab_value"] = float(self.image_data[int(row), int(col)])
        return info

    def screen_pos_of(self, cursor) -> tuple[float, float]:
        """View coordinates (mm) of the centre of the canonical voxel ``cursor`` in this plane."""
        row, col = self.display.to_screen(self.plane, cursor)
        rmm, cmm = self.display.pixel_mm(self.plane)
        return (col + 0.5) * cmm, (row + 0.5) * rmm

    # -- rendering ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-slice and redraw (normally automatic on state changes)."""
        self._shown = None
        self._on_cursor(self.state.cursor)

    def _on_cursor(self, cursor) -> None:
        if self.display is None:
            return
        key = (min(self.slice_index, self.n_slices - 1), self.state.slab)
        if key != self._shown:
            mode, thick = self.state.slab
            data = self.display.plane_image(self.plane, key[0], mode, thick)
            self.image_data = data
            self.image.setImage(data, levels=self.levels, autoLevels=False)
            geom = (data.shape, self.display.pixel_mm(self.plane))
            if geom != self._geom:
                rmm, cmm = geom[1]
                self.image.setRect(QRectF(0, 0, data.shape[1] * cmm, data.shape[0] * rmm))
                self._geom = geom
            self._shown = key
        x, y = self.screen_pos_of(cursor)
        self.vline.setPos(x)
        self.hline.setPos(y)
        self._update_overlay()

    def _on_window(self, window) -> None:
        if self._fixed_levels is None and self.display is not None:
            self.image.setLevels((window.lower, window.upper))
        self._update_overlay()

    def _on_slab(self, mode, thickness) -> None:
        self.refresh()

    # -- interaction ------------------------------------------------------------------------------
    def _point_at(self, p) -> None:
        if self.display is None:
            return
        rmm, cmm = self.display.pixel_mm(self.plane)
        self.activated.emit(self.plane)
        self.state.set_cursor(self.display.from_screen(self.plane, p.y() / rmm, p.x() / cmm, self.state.cursor))

    def _drag_window(self, dx: float, dy: float) -> None:
        if self._fixed_levels is not None:
            return
        w = self.state.window
        s = max(w.width, 20.0) / 250.0
        self.state.set_level_width(round(w.level - dy * s), round(max(1.0, w.width + dx * s)))

    def _on_mouse_moved(self, scene_pos) -> None:
        if self.display is None or not self.vb.sceneBoundingRect().contains(scene_pos):
            return
        p = self.vb.mapSceneToView(scene_pos)
        rmm, cmm = self.display.pixel_mm(self.plane)
        info = self.probe_at(p.y() / rmm, p.x() / cmm)
        if info is not None:
            self._show_probe(info)
            self.probed.emit(info)

    def _show_probe(self, info: dict) -> None:
        k, j, i = info["index_kji"]
        x, y, z = info["lps_mm"]
        hu = info["hu"]
        hu_txt = f"{hu:g}" if isinstance(hu, float) else str(hu)
        text = f"{'A-B ' if self.diverging else ''}{hu_txt} HU   [k {k}, j {j}, i {i}]   ({x:.1f}, {y:.1f}, {z:.1f}) mm LPS"
        if "slab_value" in info:
            text += f"   slab {info['slab_value']:.0f}"
        self.probe_label.setText(text)
        self._place_labels()

    def keyPressEvent(self, ev) -> None:  # noqa: N802
        key = ev.key()
        K = Qt.Key
        steps = {K.Key_Up: 1, K.Key_Right: 1, K.Key_Down: -1, K.Key_Left: -1, K.Key_PageUp: 10, K.Key_PageDown: -10}
        if key in steps:
            self.activated.emit(self.plane)
            self.scroll(steps[key])
        elif key in (K.Key_Home, K.Key_R):
            self.reset_view()
        elif key in (K.Key_Plus, K.Key_Equal):
            self.zoom(1.25)
        elif key == K.Key_Minus:
            self.zoom(0.8)
        else:
            super().keyPressEvent(ev)
            return
        ev.accept()

    # -- overlay ----------------------------------------------------------------------------------
    def _set_orientation_labels(self) -> None:
        left, right, top, bottom = PLANE_SPECS[self.plane].labels
        for k, t in zip(("left", "right", "top", "bottom"), (left, right, top, bottom)):
            self.orient_labels[k].setText(t)
        self._place_labels()

    def orientation_labels(self) -> dict[str, str]:
        return {k: lab.text() for k, lab in self.orient_labels.items()}

    def overlay_text(self) -> str:
        return self.info_label.text()

    def _update_overlay(self) -> None:
        name = self.title or self.plane.capitalize()
        if self.display is None:
            self.info_label.setText(name)
        else:
            parts = [f"{name}  {self.slice_index + 1}/{self.n_slices}"]
            if self._fixed_levels is not None:
                lo, hi = self._fixed_levels
                parts.append(f"[{lo:g}, {hi:g}] HU")
            else:
                w = self.state.window
                parts.append(f"L{w.level:g} W{w.width:g}" + (f" ({w.name})" if w.name else ""))
            mode, thick = self.state.slab
            if mode != "none" and thick > 0:
                lo, hi = self.display.slab_range(self.plane, self.slice_index, thick)
                parts.append(f"{mode.upper()} {thick:g} mm ({hi - lo} sl)")
            if self.display.oblique:
                parts.append("oblique: labels approximate")
            self.info_label.setText("   ".join(parts))
        self.info_label.setStyleSheet(f"color: {PLANE_COLOURS[self.plane]}; background: rgba(0, 0, 0, 150); font-size: 11px;")
        self._place_labels()

    def _place_labels(self) -> None:
        w, h = self.width(), self.height()
        cb = 70 if self.colorbar is not None else 0
        self.info_label.adjustSize()
        self.info_label.move(6, 4)
        self.probe_label.adjustSize()
        self.probe_label.move(6, h - self.probe_label.height() - 4)
        ol = self.orient_labels
        for lab in ol.values():
            lab.adjustSize()
        ol["left"].move(4, (h - ol["left"].height()) // 2)
        ol["right"].move(w - cb - ol["right"].width() - 4, (h - ol["right"].height()) // 2)
        ol["top"].move((w - cb - ol["top"].width()) // 2, 20)
        ol["bottom"].move((w - cb - ol["bottom"].width()) // 2, h - ol["bottom"].height() - 20)

    def resizeEvent(self, ev) -> None:  # noqa: N802
        super().resizeEvent(ev)
        if hasattr(self, "orient_labels"):  # pyqtgraph calls this from its own __init__
            self._place_labels()
            if self._auto_fit and self.fit_on_resize and self.display is not None:
                self.reset_view()
            self.resized.emit()
