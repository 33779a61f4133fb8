"""ImagePanel: one 2D image in HU with a title, a caption under it and, for differences, a diverging colour map
with a scale bar. Panels can share zoom and pan (:func:`link_panels`). Knows nothing about models.

Rows of the array are drawn top to bottom and columns left to right (an axial slice of a volume in the usual
LPS orientation then shows anterior up and patient left on the right, as in the Viewer).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class ImagePanel(QWidget):
    """``set_image(array, levels)``; ``diverging=True`` adds a colour bar labelled ``bar_label``."""

    def __init__(self, title: str = "", diverging: bool = False, bar_label: str = "HU", parent=None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(1, 1, 1, 1)
        lay.setSpacing(1)
        self.title_label = QLabel(title)
        self.title_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title_label.setStyleSheet("font-weight: bold;")
        lay.addWidget(self.title_label)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("k")
        self.graphics.ci.layout.setContentsMargins(0, 0, 0, 0)
        self.vb = self.graphics.addViewBox(row=0, col=0, lockAspect=True, invertY=True, enableMenu=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        self.diverging = diverging
        self.colorbar = None
        if diverging:
            cmap = pg.colormap.get("CET-D1")
            self.image.setColorMap(cmap)
            self.colorbar = pg.ColorBarItem(values=(-1, 1), colorMap=cmap, interactive=False, label=bar_label, width=12)
            self.colorbar.setImageItem(self.image)
            self.graphics.addItem(self.colorbar, row=0, col=1)
        lay.addWidget(self.graphics, 1)
        self.caption = QLabel("")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.caption)
        self.data: np.ndarray | None = None
        self.levels: tuple[float, float] = (-150.0, 150.0)
        self.setMinimumSize(140, 160)

    def set_title(self, text: str) -> None:
        self.title_label.setText(text)

    def set_caption(self, text: str) -> None:
        self.caption.setText(text)

    def set_image(self, array: np.ndarray | None, levels: tuple[float, float] | None = None) -> None:
        """Show ``array`` (2D, HU) between ``levels`` (HU); a diverging panel's levels also set its scale bar."""
        first = self.data is None
        if array is None:
            self.data = None
            self.image.clear()
            return
        self.data = np.asarray(array, dtype=np.float32)
        if levels is not None:
            self.levels = (float(levels[0]), float(levels[1]))
        self.image.setImage(self.data, autoLevels=False, levels=self.levels)
        if self.colorbar is not None:
            self.colorbar.setLevels(self.levels)
        if first:
            self.vb.autoRange(padding=0)


def link_panels(panels: list[ImagePanel]) -> None:
    """Zoom and pan of every panel follow the first's."""
    for p in panels[1:]:
        p.vb.setXLink(panels[0].vb)
        p.vb.setYLink(panels[0].vb)


def symmetric_scale(*diffs: np.ndarray, percentile: float = 99.5) -> float:
    """One colour scale (HU, >= 1) for several difference images: the ``percentile`` of their |values| where
    they are not 0, so one outlier does not wash the maps out (as the Viewer's compare mode)."""
    vals = [np.abs(np.asarray(d, dtype=np.float64)) for d in diffs if d is not None]
    nz = np.concatenate([v[v > 0].ravel() for v in vals]) if vals else np.zeros(0)
    return max(1.0, float(np.percentile(nz, percentile))) if nz.size else 1.0
