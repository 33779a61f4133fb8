"""Fixtures for the Qt tests: offscreen platform, a temporary settings file, a main window."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _garbage_collected_on_the_ui_thread(qapp):
    """As in the app: the cycle collector runs on the UI thread only (ctstudio.app.gc_policy); each test's
    leftover widgets are collected here, on the UI thread, not later inside another test's worker."""
    import gc

    from ctstudio.app.gc_policy import collect_on_ui_thread

    collect_on_ui_thread(qapp)
    yield
    gc.collect()


@pytest.fixture
def settings(tmp_path):
    """A QSettings on a temporary INI file: tests never touch the user's settings."""
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "ctstudio-settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def main_window(qtbot, settings):
    from ctstudio.app.main_window import MainWindow

    mw = MainWindow(settings)
    qtbot.addWidget(mw)
    mw.resize(1200, 900)
    mw.show()
    qtbot.waitExposed(mw)
    yield mw
    mw.close()


def open_and_wait(qtbot, mw, path, timeout: int = 60000):
    """Open ``path`` in the main window and wait for the volume (fails with the error dialog's text)."""
    got: list = []
    errors: list[str] = []
    mw.volume_changed.connect(got.append)
    mw.load_failed.connect(errors.append)
    try:
        mw.open_path(path)
        qtbot.waitUntil(lambda: bool(got or errors), timeout=timeout)
    finally:
        mw.volume_changed.disconnect(got.append)
        mw.load_failed.disconnect(errors.append)
    assert not errors, errors[0]
    return got[0]


def wait_error(qtbot, mw, path, timeout: int = 30000) -> str:
    """Open ``path``, expect it to fail; returns the message the load_failed signal carried."""
    errors: list[str] = []
    mw.load_failed.connect(errors.append)
    try:
        mw.open_path(path)
        qtbot.waitUntil(lambda: bool(errors), timeout=timeout)
    finally:
        mw.load_failed.disconnect(errors.append)
    return errors[0]
