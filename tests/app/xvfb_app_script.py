"""Run the real app in a real X window (xcb, under Xvfb) and grab the screen.

Usage: python xvfb_app_script.py VOLUME OUT.png SETTINGS.ini [PRESET3D]
Prints one JSON line: the 3D widget's and the axial view's rectangles in screen pixels.
Used by test_volume3d.py (which starts Xvfb) and for the screenshots described in the notes.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> int:
    path, out_png, settings_path = sys.argv[1:4]
    preset = sys.argv[4] if len(sys.argv) > 4 else "bone"
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from ctstudio.app.main_window import MainWindow

    app = QApplication([])
    settings = QSettings(settings_path, QSettings.Format.IniFormat)
    settings.setValue("viewer/preset3d", preset)
    mw = MainWindow(settings)
    mw.setGeometry(0, 0, 1280, 1000)
    mw.show()
    got = []
    mw.volume_changed.connect(got.append)
    mw.open_path(path)
    t0 = time.time()
    while not got and time.time() - t0 < 60:
        app.processEvents()
        time.sleep(0.02)
    if not got:
        print(json.dumps({"error": "volume did not load"}))
        return 1
    viewer = mw.tab("Viewer")
    viewer.check3d.setChecked(True)
    t0 = time.time()
    while time.time() - t0 < 4:
        app.processEvents()
        time.sleep(0.02)
    view3d = viewer.triplanar.view3d
    if view3d is None:
        print(json.dumps({"error": "3D view was not created"}))
        return 1
    view3d.render_window.Render()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)

    def rect(w):
        p = w.mapToGlobal(w.rect().topLeft())
        return [p.x(), p.y(), w.width(), w.height()]

    shot = QGuiApplication.primaryScreen().grabWindow(0)
    shot.save(out_png)
    # a new volume replaces the 3D render (the phantom's skull is a smooth shell, unlike headsq)
    from ctstudio.imaging.phantom import head_phantom

    mw.set_volume(head_phantom(shape=(48, 96, 96), spacing=(2.0, 2.0, 3.0)), "phantom")
    for _ in range(40):
        app.processEvents()
        time.sleep(0.05)
    view3d.render_window.Render()
    app.processEvents()
    QGuiApplication.primaryScreen().grabWindow(0).save(out_png.replace(".png", "_after.png"))
    print(json.dumps({"vtk": rect(view3d.vtk_widget), "axial": rect(viewer.views["axial"]),
                      "platform": QGuiApplication.platformName()}))
    sys.stdout.flush()
    mw.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
