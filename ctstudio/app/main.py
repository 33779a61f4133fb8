"""Start the Qt application."""

from __future__ import annotations

import sys


def run_app(path: str | None = None, series_uid: str | None = None) -> int:
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    from ctstudio.app.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("ctstudio")
    app.setOrganizationName("ctstudio")
    pg.setConfigOptions(antialias=False, imageAxisOrder="row-major")
    window = MainWindow()
    window.show()
    if path:
        window.open_path(path, series_uid=series_uid)
    return app.exec()
