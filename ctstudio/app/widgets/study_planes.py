"""ThreePlaneStudyView: a blinded case in axial, coronal and sagittal views, each with its slider, for
the continuity screen (slice-to-slice breaks show in the coronal and sagittal reformats, which is how
the ASCII paper's readers judged continuity).

It shows a ``DisplayCase`` of mode "reformat" (:func:`ctstudio.studies.images.prepare`): the case
resampled once to an isotropic display cube, so real and synthetic cases go through the same display
pipeline and the one window function. As :class:`StudyView`, nothing on screen depends on the file:
no probe, no orientation labels, no geometry. The crosshair is linked: the lines in each view mark the
other two planes; a click moves them; the sliders (or the wheel over a view) move a plane.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QSlider, QWidget

from ctstudio.imaging.window import Window, apply_window

PLANES = ("axial", "coronal", "sagittal")


class _PlaneBox(pg.ViewBox):
    def __init__(self, owner: "ThreePlaneStudyView", plane: int) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._owner, self._plane = owner, plane

    def wheelEvent(self, ev, axis=None) -> None:  # noqa: N802
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        self._owner.step(self._plane, 1 if ev.delta() > 0 else -1)
        ev.accept()

    def mouseClickEvent(self, ev) -> None:  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            p = self.mapSceneToView(ev.scenePos())
            self._owner.click(self._plane, p.x(), p.y())
            ev.accept()
        else:
            super().mouseClickEvent(ev)


class ThreePlaneStudyView(QWidget):
    """Axial | coronal | sagittal of one display cube, linked crosshair, a slider per plane."""

    #: the crosshair moved: (z, y, x) index in the display cube
    position_changed = Signal(int, int, int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        lay = QGridLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.cube: np.ndarray | None = None
        self.window: Window | None = None
        self.pos = [0, 0, 0]  # z, y, x
        self.views, self.images, self.sliders, self.lines = [], [], [], []
        for i, name in enumerate(PLANES):
            w = pg.GraphicsLayoutWidget()
            w.setBackground("k")
            w.setMinimumSize(160, 160)
            vb = _PlaneBox(self, i)
            w.ci.addItem(vb)
            w.ci.layout.setContentsMargins(0, 0, 0, 0)
            img = pg.ImageItem(axisOrder="row-major")
            img.setLevels((0, 255))
            vb.addItem(img)
            pen = pg.mkPen((255, 200, 0, 110), width=1)
            v_line, h_line = pg.InfiniteLine(angle=90, pen=pen), pg.InfiniteLine(angle=0, pen=pen)
            vb.addItem(v_line, ignoreBounds=True)
            vb.addItem(h_line, ignoreBounds=True)
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            slider.valueChanged.connect(lambda v, i=i: self.set_plane_index(i, v))
            lay.addWidget(QLabel(name), 0, i)
            lay.addWidget(w, 1, i)
            lay.addWidget(slider, 2, i)
            self.views.append(vb)
            self.images.append(img)
            self.sliders.append(slider)
            self.lines.append((v_line, h_line))
        lay.setRowStretch(1, 1)

    # plane i is indexed by cube axis i: axial by z, coronal by y, sagittal by x
    def plane(self, i: int) -> np.ndarray:
        z, y, x = self.pos
        c = self.cube
        if i == 0:
            return c[z]
        if i == 1:
            return c[::-1, y, :]  # superior at the top
        return c[::-1, :, x]

    def set_case(self, case, window: Window) -> None:
        self.cube = case.planes
        self.window = window
        self.pos = [s // 2 for s in self.cube.shape]
        for i, s in enumerate(self.sliders):
            s.blockSignals(True)
            s.setRange(0, self.cube.shape[i] - 1)
            s.setValue(self.pos[i])
            s.blockSignals(False)
        self._render_all()
        for vb, img in zip(self.views, self.images):
            h, w = img.image.shape
            vb.setRange(xRange=(0, w), yRange=(0, h), padding=0.01)

    def set_window(self, window: Window) -> None:
        self.window = window
        self._render_all()

    def clear_case(self) -> None:
        self.cube = None
        for img in self.images:
            img.clear()

    def _render_all(self) -> None:
        if self.cube is None or self.window is None:
            return
        nz = self.cube.shape[0]
        z, y, x = self.pos
        for i, img in enumerate(self.images):
            img.setImage(apply_window(self.plane(i), self.window, np.uint8), autoLevels=False, levels=(0, 255))
        # crosshair lines (pixel centres): axial shows x (vertical) and y; coronal x and z; sagittal y and z
        marks = ((x, y), (x, nz - 1 - z), (y, nz - 1 - z))
        for (v_line, h_line), (mx, my) in zip(self.lines, marks):
            v_line.setPos(mx + 0.5)
            h_line.setPos(my + 0.5)

    def set_plane_index(self, i: int, value: int) -> None:
        if self.cube is None:
            return
        value = int(np.clip(value, 0, self.cube.shape[i] - 1))
        if value == self.pos[i]:
            return
        self.pos[i] = value
        self.sliders[i].blockSignals(True)
        self.sliders[i].setValue(value)
        self.sliders[i].blockSignals(False)
        self._render_all()
        self.position_changed.emit(*self.pos)

    def step(self, i: int, n: int) -> None:
        self.set_plane_index(i, self.pos[i] + n)

    def click(self, plane: int, px: float, py: float) -> None:
        """A click in one view moves the other two planes there."""
        if self.cube is None:
            return
        nz = self.cube.shape[0]
        col, row = int(np.floor(px)), int(np.floor(py))
        if plane == 0:
            self.set_plane_index(2, col)
            self.set_plane_index(1, row)
        elif plane == 1:
            self.set_plane_index(2, col)
            self.set_plane_index(0, nz - 1 - row)
        else:
            self.set_plane_index(1, col)
            self.set_plane_index(0, nz - 1 - row)

    def view_state(self) -> dict:
        return {"position": list(self.pos)}
