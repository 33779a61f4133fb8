"""The main window's tabs. Adding a tab is adding a module here; ``main_window.py`` is not edited.

The tab contract
----------------
A module ``ctstudio/app/tabs/<name>.py`` defines:

``TITLE: str``
    The tab's label, e.g. ``"Study"``. A title listed in :data:`PLANNED` replaces that planned
    placeholder; any other title is simply added.
``ORDER: int``
    Sort key of the tab bar (lower is further left). The planned tabs use 10, 20, ... 70 (see
    :data:`PLANNED`); pick a free number in between for a new one.
``class Tab(QWidget)``
    Constructed as ``Tab(main_window)`` on the UI thread when the window opens. It must be cheap
    to construct (defer heavy work to when it is first shown) and must not block.

Optional, on the ``Tab`` instance:

``on_activated()``
    Called each time the user switches to this tab.
``shutdown()``
    Called once when the main window closes: stop timers, workers and child processes here.
``menus() -> list[QMenu]``
    Menus the window adds to its menu bar (the Viewer adds "Window" and "View").
``restore()``
    Called once after the window is first shown (restore state that needs a visible window).

What a tab may use on ``main_window`` (:class:`ctstudio.app.main_window.MainWindow`):

* ``main_window.volume`` -- the current :class:`ctstudio.volume.Volume` (``None`` before one is open);
  ``main_window.volume_changed`` -- a signal ``(Volume)`` emitted when another volume is opened;
* ``main_window.open_path(path, series_uid=None)`` -- load a file/folder off the UI thread
  (errors are shown in a dialog); ``main_window.set_volume(volume, label)`` -- show a Volume the
  tab produced (e.g. a generated one) in the viewer;
* ``main_window.show_error(title, message)`` -- a non-blocking error dialog;
* ``main_window.status(message, timeout_ms=0)`` -- the status bar;
* ``main_window.settings`` -- the ``QSettings`` (prefix your keys with your tab's name, e.g.
  ``"study/last_db"``); tests pass a temporary settings file, so never create your own QSettings;
* ``main_window.tab(title)`` -- another tab's widget (e.g. ``tab("Viewer")``), or ``None``.

Reusable widgets live in :mod:`ctstudio.app.widgets` (``SliceView``, ``TriPlanar``,
``CompareView``, ``WindowBar``, ``Volume3D``); they take a ``Volume`` and know nothing about
models or studies. Long work runs through :mod:`ctstudio.app.workers`.

A module that fails to import is reported in a disabled tab with the error, so one broken tab
never takes the window down.
"""

from __future__ import annotations

#: The tabs the window is laid out for: title -> (ORDER, what brings it). A title with no module
#: yet shows an honest, disabled placeholder naming the issue that brings it.
PLANNED: dict[str, tuple[int, str]] = {
    "Viewer": (10, "issue 3 (viewer)"),
    "Generate": (20, "issue 7 (generation core) and its app tab"),
    "Convert": (30, "issue 6 (conversion core) and its app tab"),
    "Calibrate": (40, "issue 7 (IC-Net calibration) and its app tab"),
    "Study": (50, "issue 4 (reader studies)"),
    "Results": (60, "issues 4 and 5 (study analysis, metrics)"),
    "Train": (70, "issues 6 and 7 (training) and its app tab"),
}
