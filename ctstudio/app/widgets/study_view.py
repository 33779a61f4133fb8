"""StudyView: the blinded image view of the reader-study screens.

It shows a :class:`ctstudio.studies.images.DisplayCase` -- a case already put on the study's
display grid (same dtype, shape and pixel size for every case, real or synthetic) -- through the
one window function, as uint8 with fixed levels 0..255. Unlike the viewer's ``SliceView`` it has,
on purpose, no HU probe, no orientation labels, no file name, slice-count or geometry overlay:
nothing on screen depends on where the image came from. Zoom (wheel / pinch / +/-) and pan (drag)
are pyqtgraph's; "three_planes" cases show axial | coronal | sagittal side by side; :meth:`link` syncs two views' zoom and pan; in "volume" mode Shift+wheel, PgUp/PgDn
or the Up/Down keys scroll slices (``slice_changed``).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal

from ctstudio.imaging.window import Window


class _ViewBox(pg.ViewBox):
    def __init__(self, owner: "StudyView") -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._owner = owner

    def wheelEvent(self, ev, axis=None) -> None:  # noqa: N802 (Qt naming)
        if self._owner.n_slices > 1 and not (ev.modifiers() & Qt.KeyboardModifier.ControlModifier):
            self._owner.scroll(1 if ev.delta() > 0 else -1)
            ev.accept()
            return
        super().wheelEvent(ev, axis)


class StudyView(pg.GraphicsLayoutWidget):
    """One blinded image (see module doc)."""

    slice_changed = Signal(int)

    def __init__(self, parent=None, name: str = "") -> None:
        super().__init__(parent)
        self.setBackground("k")
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.name = name
        self.vb = _ViewBox(self)
        self.vb.setMouseEnabled(True, True)
        self.ci.addItem(self.vb, row=0, col=0)
        self.ci.layout.setContentsMargins(0, 0, 0, 0)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLevels((0, 255))
        self.vb.addItem(self.image)
        self.case = None
        self.window: Window | None = None
        self.index = 0
        self.image_data: np.ndarray | None = None
        self._fit = True
        self.vb.sigRangeChangedManually.connect(self._manual_range)
        self.setMinimumSize(200, 200)

    @property
    def n_slices(self) -> int:
        """Scrollable slices: the stack in "volume" mode; 1 for one axial slice or the three planes."""
        if self.case is None:
            return 0
        return 1 if self.case.mode == "three_planes" else int(self.case.planes.shape[0])

    def set_case(self, case, window: Window, index: int | None = None, reset_view: bool = True) -> None:
        """Show a DisplayCase (the middle slice of a stack unless ``index`` is given)."""
        self.case = case
        self.window = window
        self.index = self.n_slices // 2 if index is None else int(np.clip(index, 0, self.n_slices - 1))
        self._render()
        if reset_view:
            self.reset_view()

    def set_window(self, window: Window) -> None:
        self.window = window
        self._render()

    def clear_case(self) -> None:
        """Drop the case; the screen goes black. (Not ``clear``: pyqtgraph's GraphicsLayoutWidget binds
        ``clear`` on the instance to its layout's clear(), which would remove the view box.)"""
        self.case = None
        if self.image_data is not None:
            self.image_data = np.zeros_like(self.image_data)
            self.image.setImage(self.image_data, autoLevels=False, levels=(0, 255))

    def scroll(self, n: int) -> None:
        if self.case is None or self.n_slices < 2:
            return
        new = int(np.clip(self.index + n, 0, self.n_slices - 1))
        if new != self.index:
            self.index = new
            self._render()
            self.slice_changed.emit(new)

    def set_index(self, index: int) -> None:
        self.scroll(int(index) - self.index)

    def _render(self) -> None:
        if self.case is None or self.window is None:
            return
        if self.case.mode == "three_planes":  # axial | coronal | sagittal side by side
            self.image_data = np.ascontiguousarray(np.concatenate(list(self.case.render(self.window)), axis=1))
        else:
            self.image_data = self.case.render(self.window, self.index)
        self.image.setImage(self.image_data, autoLevels=False, levels=(0, 255))

    def reset_view(self) -> None:
        """Fit the image, and keep fitting it on resize until the reader zooms or pans."""
        self._fit = True
        self._fit_now()

    def _fit_now(self) -> None:
        if self.image_data is not None:
            h, w = self.image_data.shape
            self.vb.setRange(xRange=(0, w), yRange=(0, h), padding=0.01)

    def _manual_range(self, *_) -> None:
        self._fit = False

    def resizeEvent(self, ev) -> None:  # noqa: N802
        super().resizeEvent(ev)
        if getattr(self, "_fit", False):  # pyqtgraph calls this from its own __init__
            self._fit_now()

    def zoom(self, factor: float) -> None:
        self._fit = False
        self.vb.scaleBy((1.0 / factor, 1.0 / factor))

    def link(self, other: "StudyView") -> None:
        """Sync zoom and pan with another view."""
        self.vb.setXLink(other.vb)
        self.vb.setYLink(other.vb)

    def view_state(self) -> dict:
        """Zoom/pan as the reader left it (logged with each answer)."""
        (x0, x1), (y0, y1) = self.vb.viewRange()
        size = self.image_data.shape[1] if self.image_data is not None else 1
        return {"x": [round(x0, 2), round(x1, 2)], "y": [round(y0, 2), round(y1, 2)],
                "zoom": round(size / max(1e-6, x1 - x0), 3), "slice": self.index}

    #: keys a study screen owns (answers, pause): passed on to the parent, never used for panning
    PASS_KEYS = (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_P)

    def keyPressEvent(self, ev) -> None:  # noqa: N802
        key = ev.key()
        if key in self.PASS_KEYS:
            ev.ignore()
        elif key in (Qt.Key.Key_PageUp, Qt.Key.Key_Up):
            self.scroll(1)
        elif key in (Qt.Key.Key_PageDown, Qt.Key.Key_Down):
            self.scroll(-1)
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom(1.25)
        elif key == Qt.Key.Key_Minus:
            self.zoom(0.8)
        elif key in (Qt.Key.Key_Home, Qt.Key.Key_R):
            self.reset_view()
        else:
            super().keyPressEvent(ev)
