"""Press keys with the pointer's focus on the 3D view of the real app in a real X window (xcb, Xvfb).

Usage: python xvfb_keys_script.py SETTINGS.ini
Prints one JSON line: for each round (window not active, as a test X server leaves it; window active),
the preset each number key chose, and what VTK's own key bindings would have changed (stereo, camera,
interactor events seen). Used by test_volume3d.py, which starts Xvfb.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> int:
    settings_path = sys.argv[1]
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from ctstudio.app.main_window import MainWindow
    from ctstudio.app.widgets.window_bar import PRESET_KEYS
    from ctstudio.imaging.phantom import head_phantom
    from ctstudio.imaging.window import Window

    app = QApplication([])

    def settle(seconds: float = 0.2) -> None:
        t0 = time.time()
        while time.time() - t0 < seconds:
            app.processEvents()
            time.sleep(0.01)

    mw = MainWindow(QSettings(settings_path, QSettings.Format.IniFormat))
    mw.setGeometry(0, 0, 1280, 1000)
    mw.show()
    mw.set_volume(head_phantom(shape=(32, 64, 64), spacing=(3.0, 3.0, 4.5)), "phantom")
    viewer = mw.tab("Viewer")
    viewer.check3d.setChecked(True)
    settle(1.0)
    view3d = viewer.triplanar.view3d
    if view3d is None:
        print(json.dumps({"error": "3D view was not created"}))
        return 1
    widget, iren = view3d.vtk_widget, view3d.interactor
    seen = {"CharEvent": 0, "KeyPressEvent": 0, "KeyReleaseEvent": 0, "ExitEvent": 0}
    for name in seen:
        iren.AddObserver(name, lambda _obj, event: seen.__setitem__(event, seen[event] + 1))
    camera = view3d.renderer.GetActiveCamera()
    camera.Azimuth(25)  # the user rotated the render: 'r' (VTK's reset camera) would undo it
    view3d.render_window.Render()
    style = iren.GetInteractorStyle().GetClassName()

    def camera_state():
        return [round(v, 6) for v in (*camera.GetPosition(), *camera.GetFocalPoint(), *camera.GetViewUp())]

    rounds = {}
    for active in (False, True):
        if active:
            mw.activateWindow()
            mw.raise_()
        widget.setFocus()
        settle()
        before = camera_state()
        presets = {}
        for name, key in PRESET_KEYS.items():
            viewer.state.set_window(Window(1234.0, 567.0, ""))  # a manual window: the key must change it
            QTest.keyClick(widget, key)
            settle(0.05)
            presets[key] = viewer.state.window.name
        for ch in "wsjtfpruqe3":
            QTest.keyClick(widget, ch)
            settle(0.05)
        view3d.render_window.Render()
        settle()
        rounds["active" if active else "inactive"] = {
            "window_active": mw.isActiveWindow(),
            "presets": presets,
            "stereo": view3d.render_window.GetStereoRender(),
            "camera_kept": camera_state() == before,
            "style": iren.GetInteractorStyle().GetClassName(),
            "vtk_key_events": dict(seen),
        }
    print(json.dumps({"rounds": rounds, "style_at_start": style, "alive": mw.isVisible(),
                      "platform": QGuiApplication.platformName()}))
    sys.stdout.flush()
    mw.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
