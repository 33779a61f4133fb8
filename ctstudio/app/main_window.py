"""The main window: pluggable tabs, File menu (open / DICOM folder / recent / save as), drag and
drop, status bar, settings remembered between runs. Loading and saving run off the UI thread."""

from __future__ import annotations

import importlib
import pkgutil
import traceback
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QInputDialog, QLabel, QMainWindow, QMessageBox, QTabWidget,
                               QVBoxLayout, QWidget)

from ctstudio.errors import CTStudioError
from ctstudio.volume import Volume

MAX_RECENT = 10
OPEN_FILTER = "CT volumes (*.nii *.nii.gz *.mha *.mhd *.nrrd *.nhdr *.dcm *.dicom *.ima);;All files (*)"


def make_settings(path: str | Path | None = None) -> QSettings:
    """The app's settings: an INI file at ``path`` (tests), else ``$CTSTUDIO_SETTINGS``, else the user's."""
    import os

    path = path or os.environ.get("CTSTUDIO_SETTINGS")
    if path:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "ctstudio", "ctstudio")


def _placeholder(title: str, text: str) -> QWidget:
    w = QWidget()
    lay = QVBoxLayout(w)
    lab = QLabel(f"<h3>{title}</h3><p>{text}</p>")
    lab.setWordWrap(True)
    lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    lay.addWidget(lab)
    return w


def discover_tabs() -> list[tuple[int, str, object, str | None]]:
    """(ORDER, TITLE, module or None, error) for every tab module and every planned tab without one."""
    import ctstudio.app.tabs as pkg
    from ctstudio.app.tabs import PLANNED

    found: dict[str, tuple[int, str, object, str | None]] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        try:
            mod = importlib.import_module(f"ctstudio.app.tabs.{info.name}")
            title, order = str(mod.TITLE), int(mod.ORDER)
            getattr(mod, "Tab")
            found[title] = (order, title, mod, None)
        except Exception as exc:  # a broken tab must not take the window down
            title = info.name.capitalize()
            order = PLANNED.get(title, (900, ""))[0]
            found[title] = (order, title, None, f"{type(exc).__name__}: {exc}")
    for title, (order, _) in PLANNED.items():
        found.setdefault(title, (order, title, None, None))
    return sorted(found.values(), key=lambda t: (t[0], t[1]))


class MainWindow(QMainWindow):
    """The ctstudio window. See :mod:`ctstudio.app.tabs` for what tabs may use of it."""

    #: a new current volume (Volume)
    volume_changed = Signal(object)
    #: the current volume changed in place (Volume, changed slice indices or None): slices streamed in
    volume_updated = Signal(object, object)
    #: a load failed: the message shown to the user
    load_failed = Signal(str)
    #: a save finished: the path written
    saved = Signal(str)

    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else make_settings()
        self.volume: Volume | None = None
        self.volume_label = ""
        self.volume_path: str | None = None
        self.error_box: QMessageBox | None = None
        #: how this session opens a DICOM series with gantry tilt or uneven spacing, once the user chose
        #: "remember" in the dialog (a ctstudio.io.ReadPolicy); None: ask each time
        self.read_policy = None
        self.setWindowTitle("ctstudio")
        self.setAcceptDrops(True)

        self.tabs = QTabWidget()
        self.setCentralWidget(self.tabs)
        self._tab_widgets: dict[str, QWidget] = {}
        self._build_menus()
        self._build_tabs()
        self._build_status()
        self.tabs.currentChanged.connect(self._tab_activated)
        geom = self.settings.value("window/geometry")
        if geom is not None:
            self.restoreGeometry(geom)
        else:
            self.resize(1280, 900)

    # -- construction -----------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        fm = self.menuBar().addMenu("&File")
        fm.addAction("&Open file...", QKeySequence.StandardKey.Open, self.open_file_dialog)
        fm.addAction("Open &DICOM folder...", QKeySequence("Ctrl+Shift+O"), self.open_folder_dialog)
        self.recent_menu = fm.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._fill_recent()
        fm.addSeparator()
        self.save_nifti_action = fm.addAction("Save as &NIfTI...", QKeySequence("Ctrl+S"), self.save_nifti_dialog)
        self.save_dicom_action = fm.addAction("Save as DI&COM series...", self.save_dicom_dialog)
        for a in (self.save_nifti_action, self.save_dicom_action):
            a.setEnabled(False)
        fm.addSeparator()
        fm.addAction("&Quit", QKeySequence.StandardKey.Quit, self.close)

    def _build_tabs(self) -> None:
        from ctstudio.app.capabilities import MODEL_TABS, has_models, no_models_tab

        for order, title, mod, error in discover_tabs():
            if title in MODEL_TABS and not has_models():  # the reader-only build: say so, plainly
                self.tabs.addTab(no_models_tab(title), title)
                continue
            if mod is not None:
                try:
                    widget = mod.Tab(self)
                except Exception as exc:  # noqa: BLE001
                    traceback.print_exc()
                    widget, error = None, f"{type(exc).__name__}: {exc}"
                if widget is not None:
                    self._tab_widgets[title] = widget
                    self.tabs.addTab(widget, title)
                    menus = getattr(widget, "menus", None)
                    if callable(menus):
                        for m in menus():
                            self.menuBar().addMenu(m)
                    continue
            if error:
                self.tabs.addTab(_placeholder(title, f"This tab failed to load: {error}"), title)
            else:
                from ctstudio.app.tabs import PLANNED

                what = PLANNED.get(title, (0, "a later issue"))[1]
                i = self.tabs.addTab(_placeholder(title, f"Not built yet: arrives with {what}."), title)
                self.tabs.setTabEnabled(i, False)
                self.tabs.setTabToolTip(i, f"arrives with {what}")

    def _build_status(self) -> None:
        self.probe_label = QLabel("")
        self.volume_info = QLabel("no volume")
        self.statusBar().addPermanentWidget(self.probe_label)
        self.statusBar().addPermanentWidget(self.volume_info)
        self.status("File > Open (Ctrl+O), open a DICOM folder (Ctrl+Shift+O), or drop a file here")

    def showEvent(self, ev) -> None:  # noqa: N802
        super().showEvent(ev)
        if not getattr(self, "_restored", False):
            self._restored = True
            for w in self._tab_widgets.values():
                restore = getattr(w, "restore", None)
                if callable(restore):
                    restore()

    # -- what tabs use ------------------------------------------------------------------------------------
    def set_reader_lock(self, locked: bool, owner: QWidget | None = None) -> None:
        """Lock the window to ``owner`` (a reader session) or unlock it. While locked every other tab,
        every menu action (File > Open, recent files, save, tab menus) and drag and drop are disabled,
        so nothing that could unblind a reader is reachable; unlocking restores what was enabled."""
        if locked == bool(getattr(self, "_reader_lock_saved", None)):
            return
        if locked:
            saved: list = []
            for i in range(self.tabs.count()):
                if self.tabs.widget(i) is not owner:
                    saved.append(("tab", i, self.tabs.isTabEnabled(i)))
                    self.tabs.setTabEnabled(i, False)
            stack = list(self.menuBar().actions())
            while stack:
                a = stack.pop()
                saved.append(("action", a, a.isEnabled()))
                a.setEnabled(False)
                if a.menu() is not None:
                    stack.extend(a.menu().actions())
            saved.append(("drops", None, self.acceptDrops()))
            self.setAcceptDrops(False)
            if owner is not None:
                self.tabs.setCurrentWidget(owner)
            self._reader_lock_saved = saved
        else:
            for what, obj, enabled in self._reader_lock_saved:
                if what == "tab":
                    self.tabs.setTabEnabled(obj, enabled)
                elif what == "action":
                    obj.setEnabled(enabled)
                else:
                    self.setAcceptDrops(enabled)
            self._reader_lock_saved = None

    def tab(self, title: str) -> QWidget | None:
        return self._tab_widgets.get(title)

    def status(self, message: str, timeout_ms: int = 0) -> None:
        self.statusBar().showMessage(message, timeout_ms)

    def set_probe_text(self, text: str) -> None:
        self.probe_label.setText(text)

    def show_error(self, title: str, message: str) -> QMessageBox:
        """A non-blocking error dialog (the app keeps running); kept in ``self.error_box``."""
        if self.error_box is not None:
            self.error_box.close()
        box = QMessageBox(QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        box.open()
        self.error_box = box
        self.status(f"{title}: {message.splitlines()[0]}", 10000)
        return box

    def report_exception(self, title: str, exc: BaseException, path=None) -> None:
        if isinstance(exc, CTStudioError):
            msg = str(exc)
        else:  # a raw library error: say what and where, never a traceback
            where = f"{path}: " if path else ""
            msg = (f"{where}unexpected {type(exc).__name__}: {exc}\n  -> this is a bug in ctstudio or an unusual file; "
                   "please report it with the file's description")
        self.show_error(title, msg)

    def set_volume(self, volume: Volume, label: str = "", path: str | None = None) -> None:
        """Make ``volume`` the current volume (shown in the viewer; tabs hear ``volume_changed``)."""
        self.volume = volume
        self.volume_label = label or (Path(path).name if path else "volume")
        self.volume_path = path
        self._show_volume_info(volume)
        self.setWindowTitle(f"ctstudio - {self.volume_label}")
        for a in (self.save_nifti_action, self.save_dicom_action):
            a.setEnabled(True)
        self.volume_changed.emit(volume)
        self.status(f"opened {self.volume_label}: {volume!r}", 10000)

    def update_volume(self, volume: Volume, changed_slices=None) -> None:
        """The current volume with new or changed slices (a job streaming its output): the viewer
        updates them in place, keeping its crosshair, window, zoom and 3D camera (tabs hear
        ``volume_updated``). ``changed_slices``: indices along the array's first axis, or None."""
        if self.volume is None:
            self.set_volume(volume)
            return
        self.volume = volume
        self._show_volume_info(volume)
        self.volume_updated.emit(volume, None if changed_slices is None else list(changed_slices))

    def _show_volume_info(self, volume: Volume) -> None:
        z, y, x = volume.shape
        sx, sy, sz = volume.spacing
        st = volume.hu_stats()
        geometry = ""
        for step in volume.provenance.steps:
            if step.startswith("opened as acquired"):
                geometry = "  AS ACQUIRED (geometry approximate)"
            elif step.startswith("resampled") and not geometry:
                geometry = "  RESAMPLED to a regular grid"
        self.volume_info.setText(f"{z}x{y}x{x}  {sx:.3g}x{sy:.3g}x{sz:.3g} mm  HU [{st['min']}, {st['max']}]"
                                 + ("  SYNTHETIC" if volume.provenance.synthetic else "") + geometry)
        self.volume_info.setToolTip("\n".join(volume.provenance.steps))

    # -- opening --------------------------------------------------------------------------------------------
    def _last_dir(self) -> str:
        return str(self.settings.value("last_dir", str(Path.home())))

    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open CT volume", self._last_dir(), OPEN_FILTER)
        if path:
            self.open_path(path)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open DICOM folder", self._last_dir())
        if path:
            self.open_folder(path)

    def open_path(self, path, series_uid: str | None = None, policy=None):
        """Open a file, or a DICOM folder (with the series chooser), off the UI thread; returns the worker.

        Opening is one request kind ("open"): a newer open cancels an older one still loading, and the
        older one's late result is dropped, so the window ends on the file the user opened last.
        ``policy`` (a :class:`ctstudio.io.ReadPolicy`) says how to read a series with gantry tilt or uneven
        spacing; without one, such a series is refused first and the user is asked (:meth:`ask_read_policy`)."""
        p = Path(path)
        if p.is_dir() and series_uid is None:
            return self.open_folder(p, policy)
        return self._start_load(str(p), series_uid, policy)

    def _start_load(self, path: str, series_uid: str | None, policy):
        from ctstudio.app.workers import load_volume_job, start_worker

        policy = policy or self.read_policy
        self.status(f"loading {path} ...")
        self.setCursor(Qt.CursorShape.BusyCursor)
        options = policy.to_dict() if policy is not None else {}
        return start_worker(load_volume_job, path, series_uid, kind="open", **options,
                            on_result=lambda vol: self._loaded(vol, path),
                            on_error=lambda exc: self._load_error(exc, path, series_uid, policy),
                            on_finished=self.unsetCursor)

    def open_folder(self, folder, policy=None):
        """List the DICOM series in ``folder``; with several, let the user choose (default the largest)."""
        from ctstudio.app.workers import list_series_job, start_worker

        folder = str(folder)
        self.status(f"scanning {folder} for DICOM series ...")

        def listed(series: list[dict]) -> None:
            if len(series) <= 1:
                self._start_load(folder, None, policy)
                return
            uid = self.choose_series(folder, series)
            if uid is None:
                self.status("open cancelled")
                return
            self.open_path(folder, series_uid=uid, policy=policy)

        return start_worker(list_series_job, folder, kind="open", on_result=listed,
                            on_error=lambda exc: self._load_error(exc, folder))

    def choose_series(self, folder: str, series: list[dict]) -> str | None:
        """Ask which series to open (a modal chooser; tests replace this). Largest CT first.

        ``series`` are :func:`ctstudio.io.list_series` dicts (series_instance_uid, modality, description,
        n_files)."""
        ordered = sorted(series, key=lambda s: (s["modality"] != "CT", -int(s["n_files"])))
        items = [f"{s['description'] or '(no description)'} - {s['modality'] or '?'}, {s['n_files']} images - "
                 f"{s['series_instance_uid']}" for s in ordered]
        item, ok = QInputDialog.getItem(self, "Choose a series", f"{folder} holds {len(series)} series:", items, 0, False)
        if not ok:
            return None
        return str(ordered[items.index(item)]["series_instance_uid"])

    def _loaded(self, volume: Volume, path: str) -> None:
        self.settings.setValue("last_dir", str(Path(path).parent if Path(path).is_file() else Path(path)))
        self.add_recent(path)
        self.set_volume(volume, Path(path).name, path)

    def ask_read_policy(self, path: str, message: str):
        """Ask how to open a series with gantry tilt or uneven slice spacing: ``(ReadPolicy, remember)``, or
        ``(None, False)`` when the user cancels. (Tests replace this method.)"""
        from ctstudio.io import ReadPolicy

        box = QMessageBox(QMessageBox.Icon.Question, "Irregular slice geometry",
                          f"{Path(path).name}: the slices do not form a regular grid.\n\n{message.splitlines()[0]}\n\n"
                          "How should ctstudio open it?", QMessageBox.StandardButton.Cancel, self)
        resample = box.addButton("Resample onto a regular axial grid (recommended)", QMessageBox.ButtonRole.AcceptRole)
        acquired = box.addButton("Open as acquired (geometry approximate)", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(resample)
        from PySide6.QtWidgets import QCheckBox

        remember = QCheckBox("Use this choice for the rest of this session")
        box.setCheckBox(remember)
        box.exec()
        clicked = box.clickedButton()
        if clicked is resample:
            return ReadPolicy.resample(), remember.isChecked()
        if clicked is acquired:
            return ReadPolicy.as_acquired(), remember.isChecked()
        return None, False

    def _load_error(self, exc: BaseException, path: str, series_uid: str | None = None, policy=None) -> None:
        if getattr(exc, "policy_question", None) and policy is None:  # tilt / uneven spacing: ask how to open it
            chosen, remember = self.ask_read_policy(path, str(exc))
            if chosen is not None:
                if remember:
                    self.read_policy = chosen
                self._start_load(path, series_uid, chosen)
                return
            self.status("open cancelled")
            return
        self.report_exception("Could not open volume", exc, path)
        self.load_failed.emit(self.error_box.text() if self.error_box else str(exc))

    # -- recent files ------------------------------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        v = self.settings.value("recent_files", [])
        if isinstance(v, str):
            v = [v]
        return [str(x) for x in (v or [])]

    def add_recent(self, path: str) -> None:
        path = str(Path(path).resolve())
        files = [path] + [f for f in self.recent_files() if f != path]
        self.settings.setValue("recent_files", files[:MAX_RECENT])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        if not files:
            a = self.recent_menu.addAction("(none yet)")
            a.setEnabled(False)
            return
        for n, f in enumerate(files):
            act = QAction(f"&{(n + 1) % 10} {Path(f).name}   ({Path(f).parent})", self.recent_menu)
            act.triggered.connect(lambda _=False, f=f: self.open_path(f))
            self.recent_menu.addAction(act)
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear list", lambda: (self.settings.setValue("recent_files", []), self._fill_recent()))

    # -- saving ---------------------------------------------------------------------------------------------------
    def save_nifti_dialog(self) -> None:
        if self.volume is None:
            return
        stem = Path(self.volume_label).name.split(".")[0] or "volume"
        path, _ = QFileDialog.getSaveFileName(self, "Save as NIfTI", str(Path(self._last_dir()) / f"{stem}.nii.gz"),
                                              "NIfTI (*.nii.gz *.nii)")
        if path:
            if not path.lower().endswith((".nii", ".nii.gz")):
                path += ".nii.gz"
            self.save_as(path, format="nifti")

    def save_dicom_dialog(self) -> None:
        if self.volume is None:
            return
        parent = QFileDialog.getExistingDirectory(self, "Save as DICOM series: choose the parent folder", self._last_dir())
        if not parent:
            return
        stem = Path(self.volume_label).name.split(".")[0] or "volume"
        name, ok = QInputDialog.getText(self, "Save as DICOM series", "New folder for the series:", text=f"{stem}_dicom")
        if ok and name:
            self.save_as(str(Path(parent) / name), format="dicom")

    def save_as(self, path: str, format: str | None = None):  # noqa: A002
        """Write the current volume through ctstudio.io (atomic) off the UI thread; returns the worker."""
        from ctstudio.app.workers import save_volume_job, start_worker

        opts = {"format": format} if format else {}
        self.status(f"writing {path} ...")

        def done(out) -> None:
            self.status(f"saved {out}", 10000)
            self.saved.emit(str(out))

        return start_worker(save_volume_job, self.volume, path, **opts, on_result=done,
                            on_error=lambda exc: self.report_exception("Could not save", exc, path))

    # -- drag and drop ------------------------------------------------------------------------------------------
    def dragEnterEvent(self, ev) -> None:  # noqa: N802
        if ev.mimeData().hasUrls() and any(u.isLocalFile() for u in ev.mimeData().urls()):
            ev.acceptProposedAction()
        else:
            ev.ignore()

    def dropEvent(self, ev) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            ev.acceptProposedAction()
            self.open_path(paths[0])

    # -- tabs and closing ------------------------------------------------------------------------------------------
    def _tab_activated(self, index: int) -> None:
        w = self.tabs.widget(index)
        hook = getattr(w, "on_activated", None)
        if callable(hook):
            hook()

    def closeEvent(self, ev) -> None:  # noqa: N802
        from ctstudio.app.workers import wait_for_workers

        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/tab", self.tabs.tabText(self.tabs.currentIndex()))
        for w in self._tab_widgets.values():
            hook = getattr(w, "shutdown", None)
            if callable(hook):
                try:
                    hook()
                except Exception:  # noqa: BLE001
                    traceback.print_exc()
        self.settings.sync()
        wait_for_workers(10000)
        super().closeEvent(ev)
