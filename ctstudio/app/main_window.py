"""The main window (minimal until the viewer lands): open a volume, show its middle slice."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QMessageBox

from ctstudio.errors import CTStudioError
from ctstudio.imaging.window import PRESETS, apply_window


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("ctstudio")
        self.volume = None
        self.label = QLabel("File > Open to load a CT volume")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setCentralWidget(self.label)
        menu = self.menuBar().addMenu("&File")
        menu.addAction("&Open file...", self._open_dialog)
        menu.addAction("&Quit", self.close)
        self.resize(900, 700)

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open CT volume")
        if path:
            self.open_path(path)

    def open_path(self, path: str, series_uid: str | None = None) -> bool:
        from ctstudio.io import read_volume

        try:
            vol = read_volume(path, series_uid=series_uid) if series_uid else read_volume(path)
        except CTStudioError as exc:
            QMessageBox.critical(self, "Could not open volume", str(exc))
            self.statusBar().showMessage(f"failed to open {path}")
            return False
        self.volume = vol
        mid = vol.array[vol.shape[0] // 2]
        grey = np.ascontiguousarray(apply_window(mid, PRESETS["brain"]))
        img = QImage(grey.data, grey.shape[1], grey.shape[0], grey.strides[0], QImage.Format.Format_Grayscale8)
        self.label.setPixmap(QPixmap.fromImage(img.copy()).scaled(
            self.label.size(), Qt.AspectRatioMode.KeepAspectRatio))
        self.setWindowTitle(f"ctstudio - {vol.shape[0]} slices")
        self.statusBar().showMessage(repr(vol))
        return True
