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
    app.setDesktopFileName("org.ctstudio.ctstudio")  # the taskbar matches packaging's .desktop entry
    from pathlib import Path

    from PySide6.QtGui import QIcon

    icon = Path(__file__).resolve().parents[2] / "resources" / "icons" / "ctstudio.png"  # as checkpoints finds models
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    pg.setConfigOptions(antialias=False, imageAxisOrder="row-major")
    from ctstudio.app.gc_policy import collect_on_ui_thread

    collect_on_ui_thread(app)  # Qt objects in reference cycles are destroyed on the UI thread only
    window = MainWindow()
    window.show()
    if path:
        window.open_path(path, series_uid=series_uid)
    return app.exec()
