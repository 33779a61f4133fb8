"""The Viewer tab: tri-planar views + 3D, window bar, thick slab, cine and compare mode."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSignalBlocker
from PySide6.QtGui import QActionGroup, QKeySequence
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QHBoxLayout, QLabel, QMenu,
                               QMessageBox, QPushButton, QStackedWidget, QVBoxLayout, QWidget)

from ctstudio.app.widgets.compare import CompareView
from ctstudio.app.widgets.slice_view import Bindings
from ctstudio.app.widgets.state import ViewerState
from ctstudio.app.widgets.triplanar import TriPlanar
from ctstudio.app.widgets.volume3d import PRESETS_3D, can_embed_vtk
from ctstudio.app.widgets.window_bar import WindowBar, preset_actions
from ctstudio.errors import CTStudioError
from ctstudio.volume import Volume

TITLE = "Viewer"
ORDER = 10

SLAB_LABELS = {"none": "off", "mip": "MIP", "minip": "MinIP", "mean": "mean"}


class Tab(QWidget):
    def __init__(self, main_window) -> None:
        super().__init__(main_window)
        self.mw = main_window
        settings = main_window.settings
        self.state = ViewerState(self)
        self.bindings = Bindings.from_settings(settings)
        self.volume: Volume | None = None
        self.compare_name = ""

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        bar = QHBoxLayout()
        self.window_bar = WindowBar(self.state)
        bar.addWidget(self.window_bar)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Slab"))
        self.slab_combo = QComboBox()
        for mode, label in SLAB_LABELS.items():
            self.slab_combo.addItem(label, mode)
        self.slab_thick = QDoubleSpinBox()
        self.slab_thick.setRange(0.5, 200.0)
        self.slab_thick.setValue(10.0)
        self.slab_thick.setSuffix(" mm")
        self.slab_thick.setKeyboardTracking(False)
        self.slab_combo.currentIndexChanged.connect(self._slab_from_ui)
        self.slab_thick.valueChanged.connect(self._slab_from_ui)
        bar.addWidget(self.slab_combo)
        bar.addWidget(self.slab_thick)
        bar.addSpacing(12)
        self.cine_button = QPushButton("Play")
        self.cine_button.setCheckable(True)
        self.cine_button.setToolTip("Cine: play through the slices of the last view you used")
        self.cine_button.toggled.connect(self._cine_toggled)
        self.cine_fps = QDoubleSpinBox()
        self.cine_fps.setRange(1, 60)
        self.cine_fps.setValue(float(settings.value("viewer/cine_fps", 10.0)))
        self.cine_fps.setSuffix(" fps")
        bar.addWidget(self.cine_button)
        bar.addWidget(self.cine_fps)
        reset = QPushButton("Reset view")
        reset.clicked.connect(self.reset_views)
        bar.addWidget(reset)
        self.check3d = QCheckBox("3D")
        self.check3d.setToolTip("VTK volume rendering (bone / soft tissue / MIP)")
        self.check3d.toggled.connect(self.enable_3d)
        bar.addWidget(self.check3d)
        self.compare_button = QPushButton("Compare...")
        self.compare_button.clicked.connect(self.compare_dialog)
        self.exit_compare_button = QPushButton("Exit compare")
        self.exit_compare_button.clicked.connect(self.exit_compare)
        self.exit_compare_button.hide()
        bar.addWidget(self.compare_button)
        bar.addWidget(self.exit_compare_button)
        bar.addStretch(1)
        lay.addLayout(bar)

        self.stack = QStackedWidget()
        self.triplanar = TriPlanar(self, state=self.state, bindings=self.bindings)
        self.compare = CompareView(self, state=self.state, bindings=self.bindings)
        self.stack.addWidget(self.triplanar)
        self.stack.addWidget(self.compare)
        lay.addWidget(self.stack, 1)
        self.triplanar.probed.connect(self._probe_to_status)
        for v in self.compare.views.values():
            v.probed.connect(self._probe_to_status)
        self.triplanar.cineStepped.connect(lambda *_: None)
        main_window.volume_changed.connect(self.set_volume)
        main_window.volume_updated.connect(self.update_volume)
        self._menus: list[QMenu] | None = None

    # -- volume -----------------------------------------------------------------------------------
    def set_volume(self, volume: Volume | None) -> None:
        self.cine_button.setChecked(False)
        self.exit_compare()
        self.volume = volume
        self.triplanar.set_volume(volume)

    def update_volume(self, volume: Volume, changed_slices=None) -> None:
        """New or changed slices of the shown volume: shown in place, the view kept (see TriPlanar.update_volume)."""
        self.volume = volume
        self.triplanar.update_volume(volume, changed_slices)

    @property
    def views(self):
        return self.triplanar.views

    def reset_views(self) -> None:
        if self.stack.currentWidget() is self.compare:
            self.compare.reset_view()
        else:
            self.triplanar.reset_views()

    def _probe_to_status(self, info: dict) -> None:
        k, j, i = info["index_kji"]
        x, y, z = info["lps_mm"]
        hu = info["hu"]
        self.mw.set_probe_text(f"{info['plane']}: {hu:g} HU  voxel [k {k}, j {j}, i {i}]  "
                               f"LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm")

    # -- slab / cine / 3D ------------------------------------------------------------------------------
    def _slab_from_ui(self, *_args) -> None:
        self.state.set_slab(self.slab_combo.currentData(), self.slab_thick.value())

    def set_slab(self, mode: str, thickness_mm: float | None = None) -> None:
        with QSignalBlocker(self.slab_combo), QSignalBlocker(self.slab_thick):
            self.slab_combo.setCurrentIndex(max(0, self.slab_combo.findData(mode)))
            if thickness_mm is not None:
                self.slab_thick.setValue(thickness_mm)
        self._slab_from_ui()

    def _cine_toggled(self, on: bool) -> None:
        if on:
            self.triplanar.play_cine(self.cine_fps.value())
            self.cine_button.setText("Stop")
        else:
            self.triplanar.stop_cine()
            self.cine_button.setText("Play")
        self.mw.settings.setValue("viewer/cine_fps", self.cine_fps.value())

    def enable_3d(self, on: bool) -> None:
        reason = self.triplanar.enable_3d(on, preset=str(self.mw.settings.value("viewer/preset3d", "bone")))
        if reason:
            self.mw.status(f"3D view: {reason}", 5000)
            with QSignalBlocker(self.check3d):
                self.check3d.setChecked(False)
        else:
            self.mw.settings.setValue("viewer/show3d", bool(on))
            if self._menus is not None:
                self.action3d.setChecked(on)

    def set_3d_preset(self, name: str) -> None:
        self.mw.settings.setValue("viewer/preset3d", name)
        if self.triplanar.view3d is not None:
            self.triplanar.view3d.set_preset(name)

    def set_window_button(self, button: str) -> None:
        self.mw.settings.setValue("viewer/window_button", button)
        self.bindings.window_button = button
        self.bindings.pan_button = "middle" if button != "middle" else "right"

    # -- compare ---------------------------------------------------------------------------------------
    def compare_dialog(self) -> None:
        if self.volume is None:
            self.mw.show_error("Compare", "Open a volume first (File > Open); it becomes A, then choose B.")
            return
        start = str(self.mw.settings.value("last_dir", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, "Compare with (volume B)", start,
                                              "CT volumes (*.nii *.nii.gz *.mha *.mhd *.nrrd *.dcm);;All files (*)")
        if path:
            self.compare_with_path(path)

    def compare_with_path(self, path: str):
        from ctstudio.app.workers import load_volume_job, start_worker

        self.mw.status(f"loading {path} for comparison...")
        return start_worker(load_volume_job, path, kind="compare",
                            on_result=lambda vol: self.compare_with(vol, name=Path(path).name),
                            on_error=lambda exc: self.mw.report_exception("Could not open volume B", exc, path))

    def ask_resample(self, message: str) -> bool:
        """Ask whether to resample B onto A (tests replace this)."""
        box = QMessageBox(QMessageBox.Icon.Question, "Shapes differ",
                          message + "\n\nResample B onto A's grid (trilinear) to compare them anyway?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.button(QMessageBox.StandardButton.Yes).setText("Resample B onto A")
        box.button(QMessageBox.StandardButton.No).setText("Cancel")
        return box.exec() == QMessageBox.StandardButton.Yes

    def compare_with(self, b: Volume, name: str = "B", resample: bool | None = None, a: Volume | None = None,
                     a_name: str | None = None) -> bool:
        """Enter compare mode with ``a`` (default: the current volume) as A. ``resample=None`` asks when shapes
        differ. A tab comparing two volumes of its own (real | generated) passes both; the current volume stays."""
        from ctstudio.app.widgets.compare import shape_mismatch_message

        a = self.volume if a is None else a
        if a is None:
            self.mw.show_error("Compare", "Open a volume first; it becomes A.")
            return False
        if a.shape != b.shape and resample is None:
            resample = self.ask_resample(shape_mismatch_message(a, b, "A", name))
        try:
            text = self.compare.set_volumes(a, b, resample=bool(resample),
                                            names=(a_name or self.mw.volume_label or "A", name))
        except CTStudioError as exc:
            self.mw.show_error("Cannot compare", str(exc))
            return False
        self.compare_name = name
        self.stack.setCurrentWidget(self.compare)
        self.compare_button.hide()
        self.exit_compare_button.show()
        self.cine_button.setChecked(False)
        self.mw.status(text)
        return True

    def exit_compare(self) -> None:
        if self.stack.currentWidget() is self.compare:
            self.stack.setCurrentWidget(self.triplanar)
        self.compare_button.show()
        self.exit_compare_button.hide()

    @property
    def in_compare(self) -> bool:
        return self.stack.currentWidget() is self.compare

    # -- menus (added to the menu bar by the main window) -------------------------------------------
    def menus(self) -> list[QMenu]:
        if self._menus is not None:
            return self._menus
        wmenu = QMenu("&Window", self)
        self.preset_group = preset_actions(self, self.state)
        for act in self.preset_group.actions():
            wmenu.addAction(act)
        vmenu = QMenu("&View", self)
        vmenu.addAction("Reset view", QKeySequence("Home"), self.reset_views)
        act = vmenu.addAction("Cine play / stop", QKeySequence("Ctrl+P"), lambda: self.cine_button.toggle())
        act.setToolTip("plays through the slices of the last view used")
        slab = vmenu.addMenu("Thick slab")
        group = QActionGroup(self)
        for mode, label in SLAB_LABELS.items():
            a = slab.addAction(label)
            a.setCheckable(True)
            a.setChecked(mode == "none")
            a.triggered.connect(lambda _=False, m=mode: self.set_slab(m))
            group.addAction(a)
        vmenu.addSeparator()
        self.action3d = vmenu.addAction("3D view")
        self.action3d.setCheckable(True)
        self.action3d.toggled.connect(lambda on: self.check3d.setChecked(on))
        p3 = vmenu.addMenu("3D preset")
        g3 = QActionGroup(self)
        current = str(self.mw.settings.value("viewer/preset3d", "bone"))
        for name in PRESETS_3D:
            a = p3.addAction(name)
            a.setCheckable(True)
            a.setChecked(name == current)
            a.triggered.connect(lambda _=False, n=name: self.set_3d_preset(n))
            g3.addAction(a)
        vmenu.addSeparator()
        vmenu.addAction("Compare with...", QKeySequence("Ctrl+K"), self.compare_dialog)
        vmenu.addAction("Exit compare", self.exit_compare)
        mouse = vmenu.addMenu("Window/level drag button")
        gm = QActionGroup(self)
        for button in ("right", "middle", "left"):
            a = mouse.addAction(f"{button} button" + ("  (left click then pans with Shift)" if button == "left" else ""))
            a.setCheckable(True)
            a.setChecked(self.bindings.window_button == button)
            a.triggered.connect(lambda _=False, b=button: self.set_window_button(b))
            gm.addAction(a)
        self._menus = [wmenu, vmenu]
        return self._menus

    def restore(self) -> None:
        """Settings that need the window shown (called by the main window after show())."""
        if str(self.mw.settings.value("viewer/show3d", "true")).lower() == "true" and can_embed_vtk():
            self.check3d.setChecked(True)

    def shutdown(self) -> None:
        self.triplanar.shutdown()

