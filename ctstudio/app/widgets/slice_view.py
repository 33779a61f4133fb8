"""SliceView: one pyqtgraph view of one plane (axial, coronal or sagittal) of a Volume.

* physical aspect: the image is laid out in millimetres (pixel size from the spacing), aspect locked;
* radiological orientation and R/L/A/P/S/I labels (see :mod:`ctstudio.imaging.display_geometry`);
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
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPen

from ctstudio.imaging.display_geometry import PLANE_SPECS, DisplayVolume
from ctstudio.app.widgets.state import ViewerState
from ctstudio.imaging.window import apply_window
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


_LUTS: dict[tuple[float, float], np.ndarray] = {}


def window_lut(window) -> np.ndarray:
    """Opaque RGB32 grey pixel (0xFFgggggg) of every int16 HU value, indexed by the value's bits read
    as uint16. The grey level g is the one window function's (:func:`apply_window`) uint8 output."""
    key = (float(window.lower), float(window.upper))
    lut = _LUTS.get(key)
    if lut is None:
        hu = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16)
        g = apply_window(hu, window).astype(np.uint32)
        lut = np.uint32(0xFF000000) | (g << 16) | (g << 8) | g
        if len(_LUTS) > 16:
            _LUTS.clear()
        _LUTS[key] = lut
    return lut


class _ImageItem(pg.ImageItem):
    """ImageItem with a direct path for windowed int16 slices, and an RGB32 paint cache.

    * :meth:`set_rgb32`: a (h, w) uint32 array of opaque RGB32 pixels becomes the QImage as is
      (no pyqtgraph rescaling, no format conversion);
    * otherwise pyqtgraph renders (levels, colour maps) and its QImage is converted once to RGB32:
      pyqtgraph's ARGB32 / Grayscale8 images are otherwise converted by QPainter on *every* paint.

    Measured in bench/viewer_bench.py.
    """

    _src = None
    _rgb32 = None
    _buffer = None

    def set_rgb32(self, pixels: np.ndarray) -> None:
        h, w = pixels.shape
        changed = self.image is None or self.image.shape[:2] != (h, w)
        self._buffer = np.ascontiguousarray(pixels, dtype=np.uint32)
        img = QImage(self._buffer.data, w, h, 4 * w, QImage.Format.Format_RGB32)
        self.image = self._buffer
        self.qimage = img
        self._src = img
        self._rgb32 = img
        self._renderRequired = False
        self._unrenderable = False
        if changed:
            self.prepareGeometryChange()
            self.informViewBoundsChanged()
            self.sigImageChanged.emit()
        self.update()

    def setImage(self, image=None, autoLevels=None, **kargs):  # noqa: N802 (pyqtgraph API)
        self._buffer = None
        super().setImage(image, autoLevels=autoLevels, **kargs)

    def paint(self, painter, *args) -> None:
        if self.image is None:
            return
        if self._renderRequired:
            self.render()
            if self._unrenderable:
                return
        if self.qimage is not self._src:
            self._src = self.qimage
            self._rgb32 = self.qimage.convertToFormat(QImage.Format.Format_RGB32)
        h, w = self.image.shape[:2]
        painter.drawImage(QRectF(0, 0, w, h), self._rgb32)


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
        self.image = _ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        self.colorbar = None
        if diverging:
            cmap = pg.colormap.get("CET-D1")
            self.image.setColorMap(cmap)
            self.colorbar = pg.ColorBarItem(values=(-1, 1), colorMap=cmap, interactive=False,
                                            label="A - B (HU)", width=14)
            self.colorbar.setImageItem(self.image)
            self.ci.addItem(self.colorbar, row=0, col=1)
        # crosshair and overlay texts are painted in drawForeground (plain QPainter calls on the
        # viewport): child QLabels and pyqtgraph InfiniteLines cost more per repaint than the image
        self._crosshair: tuple[float, float] | None = None  # view coordinates (mm)
        self._mark: tuple[int, int, str, str] | None = None  # a marked slice range (see set_marked_range)
        self._info_text = ""
        self._probe_text = ""
        self._orient = dict(zip(("left", "right", "top", "bottom"), PLANE_SPECS[plane].labels))
        self._font = QFont()
        self._font.setPixelSize(11)
        self._font_bold = QFont()
        self._font_bold.setPixelSize(13)
        self._font_bold.setBold(True)
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

    def update_display(self, display: DisplayVolume, cursor, changed: tuple[int, set[int]] | None = None) -> None:
        """Show ``display`` (the shown volume updated or grown) without resetting the view.

        ``cursor`` is where the shared crosshair will be in ``display`` (the same patient position as
        now); the view is panned by the distance that position moves in this plane's image (a volume
        grown on its top side), so it stays where it is on screen, at the same zoom. A view still
        fitting the whole image (never zoomed or panned) refits when the image grows. ``changed`` =
        (canonical axis, slice indices along it) that changed; ``None`` = anything may have. The
        slice on screen is re-sliced only if it shows a changed voxel (the shared state's cursor
        signal then redraws it)."""
        old = self.display
        if old is None:
            self.set_volume(display, reset_view=True)
            return
        grown = display.shape != old.shape
        self.display = display
        if grown or changed is None or self._shows_changed(*changed):
            self._shown = None
        if grown:
            if self._auto_fit:
                self.reset_view()
                return
            before = self._screen_pos(old, self.state.cursor)
            after = self._screen_pos(display, cursor)
            self.vb.translateBy(x=after[0] - before[0], y=after[1] - before[1])

    def _shows_changed(self, axis: int, indices: set[int]) -> bool:
        """Whether the slice (or slab) on screen shows a voxel of the slices ``indices`` along ``axis``."""
        spec = PLANE_SPECS[self.plane]
        if spec.fixed != axis:
            return bool(indices)  # an in-plane axis: every changed slice crosses this image
        index = self.slice_index
        mode, thick = self.state.slab
        lo, hi = (self.display.slab_range(self.plane, index, thick) if mode != "none" and thick > 0
                  else (index, index + 1))
        return any(lo <= i < hi for i in indices)

    def _screen_pos(self, display: DisplayVolume, cursor) -> tuple[float, float]:
        row, col = display.to_screen(self.plane, cursor)
        rmm, cmm = display.pixel_mm(self.plane)
        return (col + 0.5) * cmm, (row + 0.5) * rmm

    def set_marked_range(self, k_range: tuple[int, int] | None, label: str = "", colour: str = "#ff8c1a") -> None:
        """Mark the slices ``k_range`` = (first, last), inclusive, indices along the volume array's first axis
        (e.g. generated slices, so nobody mistakes them for acquired data): views that cut across those slices
        draw a coloured line at each end of the range with ``label``; a view showing one of them shows
        ``label`` in its corner. ``None`` removes the mark."""
        self._mark = None if k_range is None else (int(min(k_range)), int(max(k_range)), str(label), str(colour))
        self.vb.update()

    def marked_range(self) -> tuple[int, int, str, str] | None:
        """(first, last, label, colour) of the marked slices, or None."""
        return self._mark

    def _draw_mark(self, painter, w: int) -> None:
        lo, hi, label, colour = self._mark
        spec = PLANE_SPECS[self.plane]
        disp = self.display
        axis = disp.canonical_axis_of(0)
        n = disp.shape[axis]
        canon = sorted(n - 1 - k if disp.flip[axis] else k for k in (lo, hi))
        painter.setFont(self._font_bold)
        painter.setPen(QColor(colour))
        fm = painter.fontMetrics()
        if axis == spec.fixed:  # this view shows one slice: say whether it is a marked one
            if canon[0] <= self.slice_index <= canon[1] and label:
                painter.drawText(int(w - fm.horizontalAdvance(label) - 8), int(24 + fm.ascent()), label)
            return
        rmm, cmm = disp.pixel_mm(self.plane)
        along_rows = axis == spec.rows
        size = disp.shape[axis]
        flip = spec.row_flip if along_rows else False
        screen = sorted(size - 1 - c if flip else c for c in canon)
        first, last = screen[0], screen[1] + 1  # edges of the marked band on screen
        vb_rect = self.mapFromScene(self.vb.sceneBoundingRect()).boundingRect()
        pen = QPen(QColor(colour), 2)
        painter.setPen(pen)
        for edge in (first, last):
            if along_rows:
                y = self.mapFromScene(self.vb.mapViewToScene(QPointF(0.0, edge * rmm))).y()
                painter.drawLine(vb_rect.left(), y, vb_rect.right(), y)
            else:
                x = self.mapFromScene(self.vb.mapViewToScene(QPointF(edge * cmm, 0.0))).x()
                painter.drawLine(x, vb_rect.top(), x, vb_rect.bottom())
        if label:
            if along_rows:
                y0 = self.mapFromScene(self.vb.mapViewToScene(QPointF(0.0, first * rmm))).y()
                y1 = self.mapFromScene(self.vb.mapViewToScene(QPointF(0.0, last * rmm))).y()
                y = min(max((y0 + y1) / 2 + fm.ascent() / 2, vb_rect.top() + fm.height()), vb_rect.bottom() - 24)
                x = w - fm.horizontalAdvance(label) - 24
                painter.fillRect(QRectF(x - 3, y - fm.ascent() - 1, fm.horizontalAdvance(label) + 6, fm.height() + 2),
                                 QColor(0, 0, 0, 170))  # readable on bone, clear of the orientation letter
                painter.drawText(int(x), int(y), label)
            else:
                x = self.mapFromScene(self.vb.mapViewToScene(QPointF(first * cmm, 0.0))).x()
                painter.drawText(int(x + 4), int(vb_rect.top() + 40), label)

    def set_plane(self, plane: str) -> None:
        if plane not in PLANE_SPECS:
            raise ValueError(f"plane must be one of {tuple(PLANE_SPECS)}, got {plane!r}")
        self.plane = plane
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
        if self.image_data is not None:
            self._push_image()
        else:
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
        return self._screen_pos(self.display, cursor)

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
            self._push_image()
            geom = (data.shape, self.display.pixel_mm(self.plane))
            if geom != self._geom:
                rmm, cmm = geom[1]
                self.image.setRect(QRectF(0, 0, data.shape[1] * cmm, data.shape[0] * rmm))
                self._geom = geom
            self._shown = key
        self._crosshair = self.screen_pos_of(cursor)
        self.vb.update()  # through the scene, like pyqtgraph items: one paint per view per update
        self._update_overlay()

    def _on_window(self, window) -> None:
        if self._fixed_levels is None and self.display is not None and self.image_data is not None:
            self._push_image()
        self._update_overlay()

    def _push_image(self) -> None:
        """Send ``image_data`` to the screen under the current window.

        int16 slices go through a 65536-entry grey lookup table built by the one window function
        (:func:`ctstudio.imaging.window.apply_window`) and indexed by the slice's bits, one numpy pass
        to uint8 that pyqtgraph shows without further scaling; floats (mean slab) and difference maps
        go through pyqtgraph's levels (and colour map)."""
        data = self.image_data
        if data.dtype == np.int16 and self._fixed_levels is None and not self.diverging:
            self.image.set_rgb32(np.take(window_lut(self.state.window), data.view(np.uint16)))
        else:  # pyqtgraph rescales contiguous data much faster (measured)
            self.image.setImage(np.ascontiguousarray(data), levels=self.levels, autoLevels=False)

    def displayed_grey(self) -> np.ndarray | None:
        """The uint8 grey levels on screen (int16 slices; None for colour-mapped or float images)."""
        buf = self.image._buffer
        return None if buf is None else (buf & 0xFF).astype(np.uint8)

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
        self._probe_text = text
        self.vb.update()  # through the scene, like pyqtgraph items: one paint per view per update

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
        self._orient = dict(zip(("left", "right", "top", "bottom"), PLANE_SPECS[self.plane].labels))
        self.vb.update()  # through the scene, like pyqtgraph items: one paint per view per update

    def orientation_labels(self) -> dict[str, str]:
        """The R/L/A/P/S/I letters painted at the left, right, top and bottom edges."""
        return dict(self._orient)

    def overlay_text(self) -> str:
        """The top-left overlay: plane, slice index, window (or difference scale), slab."""
        return self._info_text

    def probe_text(self) -> str:
        """The bottom-left overlay: the HU probe under the mouse."""
        return self._probe_text

    def crosshair_pos(self) -> tuple[float, float] | None:
        """Where the crosshair lines cross, in view coordinates (mm)."""
        return self._crosshair

    def _update_overlay(self) -> None:
        name = self.title or self.plane.capitalize()
        if self.display is None:
            text = name
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
            text = "   ".join(parts)
        if text != self._info_text:
            self._info_text = text
            self.vb.update()  # through the scene, like pyqtgraph items: one paint per view per update

    def drawForeground(self, painter, rect) -> None:  # noqa: N802 (Qt override)
        """Crosshair, orientation letters and overlay texts, in viewport pixels."""
        painter.save()
        painter.resetTransform()
        w, h = self.viewport().width(), self.viewport().height()
        if self._crosshair is not None and self.display is not None:
            spec = PLANE_SPECS[self.plane]
            p = self.mapFromScene(self.vb.mapViewToScene(QPointF(*self._crosshair)))
            vb_rect = self.mapFromScene(self.vb.sceneBoundingRect()).boundingRect()
            painter.setPen(QPen(QColor(PLANE_COLOURS[_AXIS_PLANE[spec.cols]]), 1))
            painter.drawLine(p.x(), vb_rect.top(), p.x(), vb_rect.bottom())
            painter.setPen(QPen(QColor(PLANE_COLOURS[_AXIS_PLANE[spec.rows]]), 1))
            painter.drawLine(vb_rect.left(), p.y(), vb_rect.right(), p.y())
        if self._mark is not None and self.display is not None:
            self._draw_mark(painter, w)
        right = w - (70 if self.colorbar is not None else 0)
        painter.setFont(self._font_bold)
        painter.setPen(QColor("#ffd24a"))
        fm = painter.fontMetrics()
        o = self._orient
        painter.drawText(4, h // 2 + fm.ascent() // 2, o["left"])
        painter.drawText(right - fm.horizontalAdvance(o["right"]) - 4, h // 2 + fm.ascent() // 2, o["right"])
        painter.drawText((right - fm.horizontalAdvance(o["top"])) // 2, 20 + fm.ascent(), o["top"])
        painter.drawText((right - fm.horizontalAdvance(o["bottom"])) // 2, h - 20, o["bottom"])
        painter.setFont(self._font)
        fm = painter.fontMetrics()
        for text, y, colour in ((self._info_text, 4, PLANE_COLOURS[self.plane]),
                                (self._probe_text, h - fm.height() - 4, "#e8e8e8")):
            if text:
                box = QRectF(4, y, fm.horizontalAdvance(text) + 6, fm.height())
                painter.fillRect(box, QColor(0, 0, 0, 150))
                painter.setPen(QColor(colour))
                painter.drawText(box.adjusted(3, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text)
        painter.restore()

    def resizeEvent(self, ev) -> None:  # noqa: N802
        super().resizeEvent(ev)
        if hasattr(self, "_orient"):  # pyqtgraph calls this from its own __init__
            if self._auto_fit and self.fit_on_resize and self.display is not None:
                self.reset_view()
            self.resized.emit()
