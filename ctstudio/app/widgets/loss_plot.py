"""Live loss curves (pyqtgraph): one curve per loss term, log scale, TensorBoard-style smoothing.

The widget keeps the raw points (``series``); what it draws is their smoothed version (a debiased exponential
moving average, as TensorBoard's scalars dashboard: weight 0 draws the raw values) with the raw values drawn
faintly behind. :meth:`truncate_after` drops points past a step (a run resumed from an earlier checkpoint
continues its curve from there). Model-agnostic: it knows steps and named values, nothing else.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

#: colours of the curves, in order of first appearance
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard's smoothing); ``weight`` in [0, 1)."""
    values = np.asarray(values, dtype=float)
    if weight <= 0 or len(values) == 0:
        return values
    out = np.empty_like(values)
    acc, norm = 0.0, 0.0
    for i, v in enumerate(values):
        acc = acc * weight + (1 - weight) * v
        norm = norm * weight + (1 - weight)
        out[i] = acc / norm
    return out


class LossPlot(QWidget):
    """Loss curves against the training step, with a log-scale check box and a smoothing slider."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.series: dict[str, tuple[list[int], list[float]]] = {}
        self.smoothing = 0.6
        self._curves: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget(background="w")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.getAxis("left").enableAutoSIPrefix(False)  # "loss (x0.001)" over log ticks reads wrongly
        self.legend = self.plot.addLegend(offset=(-10, 10))
        lay.addWidget(self.plot, 1)
        row = QHBoxLayout()
        self.log_box = QCheckBox("log scale")
        self.log_box.setChecked(True)
        self.log_box.toggled.connect(self.set_log)
        row.addWidget(self.log_box)
        row.addWidget(QLabel("smoothing"))
        self.smooth_slider = QSlider(Qt.Orientation.Horizontal)
        self.smooth_slider.setRange(0, 99)
        self.smooth_slider.setValue(int(self.smoothing * 100))
        self.smooth_slider.valueChanged.connect(lambda v: self.set_smoothing(v / 100))
        row.addWidget(self.smooth_slider, 1)
        self.smooth_label = QLabel(f"{self.smoothing:.2f}")
        row.addWidget(self.smooth_label)
        lay.addLayout(row)
        self.set_log(True)

    # -- data -------------------------------------------------------------------------------------------------
    def add_point(self, step: int, values: dict[str, float]) -> None:
        """Add one step's values (non-finite values are skipped) and redraw."""
        for name, v in values.items():
            if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            steps, vals = self.series.setdefault(name, ([], []))
            steps.append(int(step))
            vals.append(float(v))
        self.redraw()

    def truncate_after(self, step: int) -> None:
        """Forget the points after ``step`` (a run resumed from the checkpoint at ``step``)."""
        for name, (steps, vals) in self.series.items():
            keep = sum(1 for s in steps if s <= step)
            del steps[keep:], vals[keep:]
        self.redraw()

    def clear(self) -> None:
        self.series.clear()
        for raw, smoothed in self._curves.values():
            self.plot.removeItem(raw)
            self.plot.removeItem(smoothed)
        self.legend.clear()
        self._curves.clear()

    # -- view -------------------------------------------------------------------------------------------------
    def set_log(self, on: bool) -> None:
        self.plot.setLogMode(x=False, y=bool(on))
        if self.log_box.isChecked() != bool(on):
            self.log_box.setChecked(bool(on))

    def set_smoothing(self, weight: float) -> None:
        self.smoothing = min(max(float(weight), 0.0), 0.99)
        self.smooth_label.setText(f"{self.smoothing:.2f}")
        self.redraw()

    def smoothed(self, name: str) -> np.ndarray:
        return smooth(np.array(self.series[name][1]), self.smoothing)

    def redraw(self) -> None:
        for i, (name, (steps, vals)) in enumerate(self.series.items()):
            if name not in self._curves:
                colour = COLOURS[len(self._curves) % len(COLOURS)]
                faint = pg.mkColor(colour)
                faint.setAlpha(60)
                raw = self.plot.plot(pen=pg.mkPen(faint, width=1))
                smoothed = self.plot.plot(pen=pg.mkPen(colour, width=2), name=name)
                self._curves[name] = (raw, smoothed)
            raw, smoothed = self._curves[name]
            x = np.array(steps, dtype=float)
            y = np.array(vals, dtype=float)
            if self.log_box.isChecked():  # log of a non-positive loss (a GAN's critic) is undefined: leave it out
                ok = y > 0
                x, y = x[ok], y[ok]
            raw.setData(x, y)
            smoothed.setData(x, smooth(y, self.smoothing))
