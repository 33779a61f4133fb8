"""The Calibrate tab: an IC-Net inspector that shows what intensity calibration does, in two modes.

* **Generated volume**: the current volume (one the Generate tab made, or any volume) is calibrated slice by
  slice with IC-Net and with histogram matching (:func:`ctstudio.pipelines.inspect.calibration_profile`, off
  the UI thread, with Cancel); a plot along z (patient position, mm) shows each slice's ROI mean HU (SD as error
  bars) before IC-Net, after IC-Net, after histogram matching, and of the real seed slices when a seed volume is
  given (read from the volume's provenance when it names one). A click on a point shows that slice before /
  after / after - before (a diverging map with a scale bar in HU).
* **Drift on a real volume**: the mu slider (0.70 ... 1.30) applies IC-Net's training drift
  (``intensity_drift_hu``) to the current slice live; the drifted slice, IC-Net's output, histogram matching's
  output and the original are shown with each one's difference from the original and its ROI MAE in HU
  (:func:`ctstudio.pipelines.inspect.drift_view`, the figures of ``metrics.robustness``). "Run mu sweep" runs
  the sweep over the volume in the background (:func:`ctstudio.pipelines.inspect.mu_sweep`) and plots ROI MAE
  against mu for IC-Net and histogram matching as it goes; Export writes the curve as CSV and PNG.

The IC-Net is the one chosen in the shared models panel (kind icnet); it is loaded in the workers through the
one cached loader, so the first use pays for the load and every later one is free.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout,
                               QLabel, QProgressBar, QPushButton, QSlider, QSpinBox, QSplitter, QTabWidget,
                               QVBoxLayout, QWidget)

from ctstudio.app.widgets.image_panel import ImagePanel, link_panels, symmetric_scale
from ctstudio.app.widgets.models_panel import ModelsPanel
from ctstudio.errors import CTStudioError, InputError
from ctstudio.jobs import Progress
from ctstudio.volume import Volume

TITLE = "Calibrate"
ORDER = 40

#: the window the images are shown in: IC-Net's ROI
ROI_LEVELS = (-150.0, 150.0)
#: curve colours: drifted / before, IC-Net, histogram matching, real seed
COLOURS = {"drifted": "#c0c0c0", "before": "#c0c0c0", "icnet": "#40c0ff", "histogram": "#ff9040", "seed": "#60e060"}
LABELS = {"drifted": "drifted (no calibration)", "before": "before IC-Net", "icnet": "IC-Net",
          "histogram": "histogram matching", "seed": "real seed slices"}


# -- jobs (run in workers; torch is imported there) -----------------------------------------------------------
def _calibrators(model: str, device: str) -> dict:
    from ctstudio.diffusion.calibrate import histogram_match
    from ctstudio.pipelines.models import load_model

    icnet = load_model(model, kind="icnet", device=device, purpose="the Calibrate tab").runner
    return {"icnet": icnet, "histogram": histogram_match}


def drift_job(array: np.ndarray, k: int, mu: float, model: str, device: str, *, cancel=None):
    """:func:`ctstudio.pipelines.inspect.drift_view` of slice ``k`` at ``mu`` with IC-Net and histogram matching."""
    from ctstudio.pipelines.inspect import drift_view

    yield Progress("drift", 1, "slice").event("start", k=k, mu=mu)
    return drift_view(array, k, mu, _calibrators(model, device))


def sweep_job(array: np.ndarray, model: str, device: str, mus, slices, *, cancel=None):
    """:func:`ctstudio.pipelines.inspect.mu_sweep` with IC-Net and histogram matching."""
    from ctstudio.pipelines.inspect import check_ct_range, mu_sweep

    check_ct_range(array)
    yield Progress("mu-sweep", None, "slice").event("load", model=model)
    return (yield from mu_sweep(array, _calibrators(model, device), mus, slices, cancel=cancel))


def profile_job(volume: Volume, model: str, device: str, *, cancel=None):
    """:func:`ctstudio.pipelines.inspect.calibration_profile` with the chosen IC-Net."""
    from ctstudio.pipelines.inspect import calibration_profile, check_ct_range

    check_ct_range(volume.array, "the generated volume")
    yield Progress("inspect", None, "slice").event("load", model=model)
    icnet = _calibrators(model, device)["icnet"]
    return (yield from calibration_profile(volume, icnet, cancel=cancel))


class Tab(QWidget):
    """See the module doc."""

    def __init__(self, main_window) -> None:
        super().__init__(main_window)
        self.mw = main_window
        self.drift: dict | None = None  # the last drift_view result shown
        self.sweep: dict | None = None  # the last finished sweep
        self.sweep_rows: list[dict] = []
        self.sweep_worker = None
        self.profile = None  # the last CalibrationProfile
        self.profile_worker = None
        self.seed: Volume | None = None
        self.seed_name = ""
        self.shown_slice: int | None = None  # the generated slice shown (array index)
        self._drift_pending = False
        self._drift_worker = None

        outer = QHBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        split = QSplitter(Qt.Orientation.Horizontal)
        outer.addWidget(split)
        box = QGroupBox("IC-Net")
        bl = QVBoxLayout(box)
        self.models = ModelsPanel(main_window, kinds=("icnet",), purpose="the Calibrate tab")
        bl.addWidget(self.models)
        self.volume_label = QLabel("")
        self.volume_label.setWordWrap(True)
        bl.addWidget(self.volume_label)
        box.setMinimumWidth(300)
        split.addWidget(box)
        self.modes = QTabWidget()
        self.modes.addTab(self._build_drift(), "Drift on a real volume")
        self.modes.addTab(self._build_generated(), "Generated volume")
        split.addWidget(self.modes)
        split.setSizes([320, 1000])
        self._drift_timer = QTimer(self)
        self._drift_timer.setSingleShot(True)
        self._drift_timer.setInterval(30)
        self._drift_timer.timeout.connect(self.update_drift)
        main_window.volume_changed.connect(lambda *_: self._volume_changed())
        self._volume_changed()

    # -- construction ----------------------------------------------------------------------------------------
    def _build_drift(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        row = QHBoxLayout()
        row.addWidget(QLabel("Slice"))
        self.slice_spin = QSpinBox()
        self.slice_spin.setToolTip("the real slice to drift (array index); the slice before it is the prior")
        self.slice_spin.valueChanged.connect(lambda *_: self._drift_timer.start())
        row.addWidget(self.slice_spin)
        row.addSpacing(12)
        row.addWidget(QLabel("mu"))
        self.mu_slider = QSlider(Qt.Orientation.Horizontal)
        self.mu_slider.setRange(70, 130)
        self.mu_slider.setValue(100)
        self.mu_slider.setSingleStep(1)
        self.mu_slider.setPageStep(5)
        self.mu_slider.setTickInterval(5)
        self.mu_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.mu_slider.setToolTip("IC-Net's training drift: x' = (x - mean) * mu + mean in the ROI window")
        self.mu_slider.valueChanged.connect(self._mu_moved)
        row.addWidget(self.mu_slider, 1)
        self.mu_label = QLabel("mu = 1.00")
        self.mu_label.setMinimumWidth(80)
        row.addWidget(self.mu_label)
        lay.addLayout(row)
        grid = QGridLayout()
        grid.setSpacing(2)
        self.drift_panels = {key: ImagePanel(title) for key, title in
                             (("drifted", "drifted"), ("icnet", "IC-Net"), ("histogram", "histogram matching"),
                              ("original", "original"))}
        self.drift_diffs = {key: ImagePanel(f"{title} - original", diverging=True, bar_label="HU")
                            for key, title in (("drifted", "drifted"), ("icnet", "IC-Net"),
                                               ("histogram", "histogram matching"))}
        for col, key in enumerate(("drifted", "icnet", "histogram", "original")):
            grid.addWidget(self.drift_panels[key], 0, col)
            if key in self.drift_diffs:
                grid.addWidget(self.drift_diffs[key], 1, col)
        self.drift_note = QLabel("")
        self.drift_note.setWordWrap(True)
        self.drift_note.setAlignment(Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.drift_note, 1, 3)
        link_panels([*self.drift_panels.values(), *self.drift_diffs.values()])
        images = QWidget()
        images.setLayout(grid)

        sweep = QGroupBox("mu sweep over the volume (the ASCII paper's robustness figure)")
        sl = QVBoxLayout(sweep)
        row = QHBoxLayout()
        row.addWidget(QLabel("mu step"))
        self.step_spin = QDoubleSpinBox()
        self.step_spin.setRange(0.01, 0.30)
        self.step_spin.setSingleStep(0.01)
        self.step_spin.setValue(0.05)
        row.addWidget(self.step_spin)
        row.addWidget(QLabel("every"))
        self.every_spin = QSpinBox()
        self.every_spin.setRange(1, 100)
        self.every_spin.setValue(2)
        self.every_spin.setSuffix(" slice(s)")
        row.addWidget(self.every_spin)
        self.sweep_button = QPushButton("Run mu sweep")
        self.sweep_button.clicked.connect(self.run_sweep)
        self.sweep_cancel = QPushButton("Cancel")
        self.sweep_cancel.setEnabled(False)
        self.sweep_cancel.clicked.connect(self.cancel_sweep)
        self.csv_button = QPushButton("Export CSV...")
        self.csv_button.clicked.connect(self.export_csv_dialog)
        self.png_button = QPushButton("Export PNG...")
        self.png_button.clicked.connect(self.export_png_dialog)
        for b in (self.sweep_button, self.sweep_cancel, self.csv_button, self.png_button):
            row.addWidget(b)
        self.csv_button.setEnabled(False)
        self.png_button.setEnabled(False)
        self.sweep_progress = QProgressBar()
        row.addWidget(self.sweep_progress, 1)
        sl.addLayout(row)
        self.sweep_label = QLabel("")
        sl.addWidget(self.sweep_label)
        self.sweep_plot = pg.PlotWidget()
        self.sweep_plot.setLabel("bottom", "mu (intensity drift)")
        self.sweep_plot.setLabel("left", "ROI MAE (HU)")
        self.sweep_plot.showGrid(x=True, y=True, alpha=0.3)
        self.sweep_plot.addLegend(offset=(10, 10))
        self.sweep_plot.setMinimumHeight(160)
        self.sweep_curves = {key: self.sweep_plot.plot([], [], pen=pg.mkPen(COLOURS[key], width=2), symbol="o",
                                                       symbolSize=6, symbolBrush=COLOURS[key], name=LABELS[key])
                             for key in ("drifted", "icnet", "histogram")}
        self.mu_line = pg.InfiniteLine(pos=1.0, angle=90, pen=pg.mkPen("#ffd24a", style=Qt.PenStyle.DashLine))
        self.sweep_plot.addItem(self.mu_line)
        sl.addWidget(self.sweep_plot, 1)
        vs = QSplitter(Qt.Orientation.Vertical)
        vs.addWidget(images)
        vs.addWidget(sweep)
        vs.setSizes([560, 300])
        lay.addWidget(vs, 1)
        return w

    def _build_generated(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        row = QHBoxLayout()
        self.profile_button = QPushButton("Inspect the current volume")
        self.profile_button.setToolTip("calibrate every slice with IC-Net and with histogram matching and plot "
                                       "the ROI mean HU per slice")
        self.profile_button.clicked.connect(self.run_profile)
        self.profile_cancel = QPushButton("Cancel")
        self.profile_cancel.setEnabled(False)
        self.profile_cancel.clicked.connect(self.cancel_profile)
        self.seed_button = QPushButton("Seed volume...")
        self.seed_button.setToolTip("the real volume the generation started from: its slices are plotted too")
        self.seed_button.clicked.connect(self.seed_dialog)
        for b in (self.profile_button, self.profile_cancel, self.seed_button):
            row.addWidget(b)
        self.seed_label = QLabel("seed: none")
        row.addWidget(self.seed_label, 1)
        self.profile_progress = QProgressBar()
        row.addWidget(self.profile_progress)
        lay.addLayout(row)
        self.profile_label = QLabel("")
        self.profile_label.setWordWrap(True)
        lay.addWidget(self.profile_label)
        self.profile_plot = pg.PlotWidget()
        self.profile_plot.setLabel("bottom", "slice position z (mm, patient)")
        self.profile_plot.setLabel("left", "ROI mean (HU)")
        self.profile_plot.showGrid(x=True, y=True, alpha=0.3)
        self.profile_plot.addLegend(offset=(10, 10))
        self.profile_plot.setMinimumHeight(140)
        self.profile_plot.scene().sigMouseClicked.connect(lambda ev: self._profile_clicked(self.profile_plot, ev))
        self.sd_plot = pg.PlotWidget()
        self.sd_plot.setLabel("bottom", "slice position z (mm, patient)")
        self.sd_plot.setLabel("left", "ROI SD (HU)")
        self.sd_plot.showGrid(x=True, y=True, alpha=0.3)
        self.sd_plot.setMinimumHeight(100)
        self.sd_plot.setXLink(self.profile_plot)
        self.sd_plot.scene().sigMouseClicked.connect(lambda ev: self._profile_clicked(self.sd_plot, ev))
        self.profile_curves: dict[str, pg.PlotDataItem] = {}
        self.markers: list[pg.InfiniteLine] = []
        row = QHBoxLayout()
        row.addWidget(QLabel("after:"))
        self.after_combo = QComboBox()
        self.after_combo.addItem("IC-Net", "icnet")
        self.after_combo.addItem("histogram matching", "histogram")
        self.after_combo.currentIndexChanged.connect(lambda *_: self.show_generated_slice(self.shown_slice))
        row.addWidget(self.after_combo)
        row.addStretch(1)
        images = QWidget()
        il = QVBoxLayout(images)
        il.setContentsMargins(0, 0, 0, 0)
        il.addLayout(row)
        grid = QHBoxLayout()
        self.gen_panels = {"before": ImagePanel("before IC-Net"), "after": ImagePanel("after IC-Net"),
                           "diff": ImagePanel("after - before", diverging=True, bar_label="HU")}
        for p in self.gen_panels.values():
            grid.addWidget(p)
        link_panels(list(self.gen_panels.values()))
        il.addLayout(grid, 1)
        vs = QSplitter(Qt.Orientation.Vertical)
        vs.addWidget(self.profile_plot)
        vs.addWidget(self.sd_plot)
        vs.addWidget(images)
        vs.setSizes([260, 160, 420])
        lay.addWidget(vs, 1)
        return w

    # -- common ----------------------------------------------------------------------------------------------
    def model(self) -> str:
        """The IC-Net chosen in the panel (its file), or InputError."""
        e = self.models.selected_entry()
        if e is None or e.error:
            raise InputError(e.error if e is not None else "no IC-Net model found",
                             hint="add one with 'Add model file...' in the panel")
        return str(e.path)

    def _volume_changed(self) -> None:
        v = self.mw.volume
        if v is None:
            self.volume_label.setText("no volume open: open a real CT in the Viewer (File > Open)")
            self.slice_spin.setRange(0, 0)
            return
        n = v.shape[0]
        self.volume_label.setText(f"volume: {self.mw.volume_label} ({n} x {v.shape[1]} x {v.shape[2]})")
        self.slice_spin.blockSignals(True)
        self.slice_spin.setRange(1, max(1, n - 1))
        self.slice_spin.setValue(max(1, n // 2))
        self.slice_spin.blockSignals(False)
        self.drift = None
        if self.isVisible():
            self._drift_timer.start()
        self._suggest_seed(v)

    def showEvent(self, ev) -> None:  # noqa: N802
        super().showEvent(ev)
        if self.drift is None and self.mw.volume is not None:
            self._drift_timer.start()

    def on_activated(self) -> None:
        if self.drift is None and self.mw.volume is not None:
            self._drift_timer.start()

    # -- drift mode ------------------------------------------------------------------------------------------
    @property
    def mu(self) -> float:
        return self.mu_slider.value() / 100.0

    def set_mu(self, mu: float) -> None:
        self.mu_slider.setValue(int(round(mu * 100)))

    def _mu_moved(self, _value: int) -> None:
        self.mu_label.setText(f"mu = {self.mu:.2f}")
        self.mu_line.setValue(self.mu)
        self._drift_timer.start()

    def update_drift(self):
        """Recompute the drift view for the current slice and mu (a worker; a newer one supersedes it)."""
        from ctstudio.app.workers import start_worker

        v = self.mw.volume
        if v is None:
            return None
        if v.shape[0] < 2:
            self.drift_note.setText("the volume has one slice: the drift view needs a slice before the current one")
            return None
        try:
            model = self.model()
        except CTStudioError as exc:
            self.drift_note.setText(str(exc))
            return None
        k, mu = self.slice_spin.value(), self.mu
        self._drift_worker = start_worker(drift_job, v.array, k, mu, model, self.models.device(),
                                          kind="calibrate-drift", on_result=self._show_drift,
                                          on_error=lambda exc: self.drift_note.setText(f"cannot calibrate: {exc}"))
        return self._drift_worker

    def _show_drift(self, d: dict) -> None:
        self.drift = d
        orig = d["original"]
        images = {"drifted": d["drifted"], "original": orig, **d["outputs"]}
        diffs = {key: images[key] - orig for key in self.drift_diffs}
        scale = symmetric_scale(*diffs.values())
        for key, panel in self.drift_panels.items():
            panel.set_image(images[key], ROI_LEVELS)
            if key == "original":
                panel.set_caption(f"slice {d['k']}, prior {d['k'] - 1}")
            else:
                panel.set_caption(f"ROI MAE {d['mae_roi_hu'][key]:.2f} HU")
        for key, panel in self.drift_diffs.items():
            panel.set_image(diffs[key], (-scale, scale))
            panel.set_caption(f"max |diff| {np.abs(diffs[key]).max():.1f} HU")
        self.drift_note.setText(f"mu = {d['mu']:.2f}\nwindow {ROI_LEVELS[0]:g} ... {ROI_LEVELS[1]:g} HU "
                                f"(IC-Net ROI)\ndifference scale +-{scale:g} HU\nROI: {int(d['roi_mask'].sum())} "
                                "pixels of the original in [-150, 150] HU")

    # -- the sweep -------------------------------------------------------------------------------------------
    def sweep_slices(self) -> list[int]:
        v = self.mw.volume
        n = v.shape[0] if v is not None else 0
        return list(range(1, n, self.every_spin.value()))

    def run_sweep(self):
        """The mu sweep over the current volume in the background; returns the worker (None: cannot start)."""
        from ctstudio.app.workers import start_worker
        from ctstudio.pipelines.inspect import sweep_mus

        v = self.mw.volume
        try:
            if v is None:
                raise InputError("open a real CT first (File > Open)")
            model = self.model()
            mus = sweep_mus(self.step_spin.value())
        except CTStudioError as exc:
            self.mw.show_error("Cannot run the sweep", str(exc))
            return None
        self.sweep, self.sweep_rows = None, []
        for c in self.sweep_curves.values():
            c.setData([], [])
        self.sweep_progress.setRange(0, 0)
        self.sweep_label.setText(f"{len(mus)} mu values x {len(self.sweep_slices())} slices ...")
        self.sweep_worker = start_worker(sweep_job, v.array, model, self.models.device(), mus, self.sweep_slices(),
                                         kind="calibrate-sweep", on_progress=self._sweep_progress,
                                         on_result=self._sweep_done, on_error=self._sweep_failed,
                                         on_finished=self._sweep_finished)
        self.sweep_worker.aborted.connect(lambda: self.sweep_label.setText(
            f"cancelled after {len(self.sweep_rows)} mu values (the curve so far is kept on screen, not exported)"))
        self.sweep_button.setEnabled(False)
        self.sweep_cancel.setEnabled(True)
        self.csv_button.setEnabled(False)
        self.png_button.setEnabled(False)
        return self.sweep_worker

    def cancel_sweep(self) -> None:
        if self.sweep_worker is not None:
            self.sweep_worker.quit()

    def _sweep_progress(self, ev: dict) -> None:
        if ev.get("stage") != "mu":
            return
        from ctstudio.app.tabs.convert import format_eta

        self.sweep_progress.setRange(0, int(ev["total"]))
        self.sweep_progress.setValue(int(ev["done"]))
        self.sweep_label.setText(format_eta(ev))
        self.sweep_rows.append(ev["row"])
        self._plot_sweep(self.sweep_rows)

    def _plot_sweep(self, rows: list[dict]) -> None:
        mus = [r["mu"] for r in rows]
        for key, c in self.sweep_curves.items():
            c.setData(mus, [r[key] for r in rows])

    def _sweep_done(self, sweep: dict) -> None:
        self.sweep = sweep
        self.sweep_rows = list(sweep["rows"])
        self._plot_sweep(self.sweep_rows)
        drifted = [r for r in sweep["rows"] if r["mu"] != 1.0]
        ic = np.mean([r["icnet"] for r in drifted]) if drifted else float("nan")
        hm = np.mean([r["histogram"] for r in drifted]) if drifted else float("nan")
        self.sweep_label.setText(f"{len(sweep['mus'])} mu values x {len(sweep['slices'])} slices: mean ROI MAE at "
                                 f"mu != 1: IC-Net {ic:.2f} HU, histogram matching {hm:.2f} HU")
        self.csv_button.setEnabled(True)
        self.png_button.setEnabled(True)

    def _sweep_failed(self, exc: BaseException) -> None:
        self.sweep_label.setText(f"failed: {exc}")
        self.mw.report_exception("The mu sweep failed", exc)

    def _sweep_finished(self) -> None:
        self.sweep_worker = None
        self.sweep_progress.setRange(0, 1)
        self.sweep_progress.setValue(1 if self.sweep is not None else 0)
        self.sweep_button.setEnabled(True)
        self.sweep_cancel.setEnabled(False)

    def export_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the mu sweep as CSV", str(Path.home() / "mu_sweep.csv"),
                                              "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_png_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the mu sweep plot as PNG", str(Path.home() / "mu_sweep.png"),
                                              "PNG (*.png)")
        if path:
            self.export_png(path)

    def export_csv(self, path) -> Path | None:
        from ctstudio.pipelines.inspect import sweep_csv

        if self.sweep is None:
            return None
        try:
            out = sweep_csv(self.sweep, path)
        except (CTStudioError, OSError) as exc:
            self.mw.report_exception("Could not export", exc, path)
            return None
        self.mw.status(f"wrote {out}", 10000)
        return out

    def export_png(self, path) -> Path | None:
        if self.sweep is None:
            return None
        out = Path(path)
        if not self.sweep_plot.grab().save(str(out), "PNG"):
            self.mw.show_error("Could not export", f"{out}: the PNG could not be written")
            return None
        self.mw.status(f"wrote {out}", 10000)
        return out

    # -- generated-volume mode -------------------------------------------------------------------------------
    def _suggest_seed(self, v: Volume) -> None:
        """A volume the Generate tab made names its seed file in its provenance: offer it."""
        seed = v.provenance.parameters.get("seed_volume") if isinstance(v.provenance.parameters, dict) else None
        if seed and Path(str(seed)).is_file() and self.seed is None:
            self.seed_label.setText(f"seed: {Path(str(seed)).name} (from the volume's provenance; reading ...)")
            self.load_seed(str(seed))

    def seed_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Seed volume (the real CT the generation started from)",
                                              str(self.mw.settings.value("last_dir", str(Path.home()))),
                                              "Volumes (*.nii *.nii.gz *.mha *.mhd *.nrrd *.nhdr *.dcm);;All files (*)")
        if path:
            self.load_seed(path)

    def load_seed(self, path):
        from ctstudio.app.workers import load_volume_job, start_worker

        return start_worker(load_volume_job, str(path), kind="calibrate-seed",
                            on_result=lambda vol: self.set_seed(vol, Path(path).name),
                            on_error=lambda exc: self.mw.report_exception("Cannot read the seed volume", exc, path))

    def set_seed(self, volume: Volume | None, name: str = "") -> None:
        self.seed, self.seed_name = volume, name
        self.seed_label.setText(f"seed: {name} ({volume.shape[0]} slices)" if volume is not None else "seed: none")
        if self.profile is not None:
            self._plot_profile()

    def run_profile(self):
        from ctstudio.app.workers import start_worker

        v = self.mw.volume
        try:
            if v is None:
                raise InputError("open or generate a volume first")
            model = self.model()
        except CTStudioError as exc:
            self.mw.show_error("Cannot inspect", str(exc))
            return None
        self.profile_volume = v
        self.profile_progress.setRange(0, 0)
        note = ""
        params = v.provenance.parameters if isinstance(v.provenance.parameters, dict) else {}
        if params.get("icnet"):
            note = " (this volume was generated with IC-Net on: 'before' is already calibrated once)"
        self.profile_label.setText(f"calibrating {v.shape[0]} slices with IC-Net and histogram matching{note} ...")
        self._profile_note = note
        self.profile_worker = start_worker(profile_job, v, model, self.models.device(), kind="calibrate-profile",
                                           on_progress=self._profile_progress, on_result=self._profile_done,
                                           on_error=lambda exc: self.mw.report_exception("Inspection failed", exc),
                                           on_finished=self._profile_finished)
        self.profile_worker.aborted.connect(lambda: self.profile_label.setText("cancelled"))
        self.profile_button.setEnabled(False)
        self.profile_cancel.setEnabled(True)
        return self.profile_worker

    def cancel_profile(self) -> None:
        if self.profile_worker is not None:
            self.profile_worker.quit()

    def _profile_progress(self, ev: dict) -> None:
        if ev.get("stage") == "slice" and ev.get("total"):
            from ctstudio.app.tabs.convert import format_eta

            self.profile_progress.setRange(0, int(ev["total"]))
            self.profile_progress.setValue(int(ev["done"]))
            self.profile_label.setText(f"{ev.get('method')}: {format_eta(ev)}")

    def _profile_finished(self) -> None:
        self.profile_worker = None
        self.profile_progress.setRange(0, 1)
        self.profile_progress.setValue(1 if self.profile is not None else 0)
        self.profile_button.setEnabled(True)
        self.profile_cancel.setEnabled(False)

    def _profile_done(self, profile) -> None:
        self.profile = profile
        st = profile.stats
        self.profile_label.setText(
            f"{len(profile.z_mm)} slices; mean ROI HU: before {np.nanmean(st['before']['mean']):.1f}, IC-Net "
            f"{np.nanmean(st['icnet']['mean']):.1f}, histogram matching {np.nanmean(st['histogram']['mean']):.1f}"
            f"{self._profile_note}. Click a point to see that slice.")
        self._plot_profile()
        self.show_generated_slice(len(profile.z_mm) // 2)

    def profile_series(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """What the plot shows: name -> (z mm, ROI mean HU, ROI SD HU); "seed" when a seed volume is set."""
        from ctstudio.pipelines.inspect import roi_profile, slice_positions_mm

        out = {}
        if self.profile is not None:
            for key in ("before", "icnet", "histogram"):
                s = self.profile.stats[key]
                out[key] = (self.profile.z_mm, s["mean"], s["sd"])
        if self.seed is not None:
            s = roi_profile(self.seed.array)
            out["seed"] = (slice_positions_mm(self.seed), s["mean"], s["sd"])
        return out

    def _plot_profile(self) -> None:
        """ROI mean (top) and SD (below) per slice along z, one curve per series; a marker at the slice shown."""
        self.profile_plot.clear()
        self.sd_plot.clear()
        self.profile_curves = {}
        for key, (z, mean, sd) in self.profile_series().items():
            if key == "seed":
                style = {"pen": None, "symbol": "s", "symbolSize": 6}
            else:
                style = {"pen": pg.mkPen(COLOURS[key], width=2), "symbol": "o", "symbolSize": 5}
            self.profile_curves[key] = self.profile_plot.plot(z, mean, symbolBrush=COLOURS[key], name=LABELS[key],
                                                              **style)
            self.profile_curves[f"{key}-sd"] = self.sd_plot.plot(z, sd, symbolBrush=COLOURS[key], **style)
        self.markers = []
        for plot in (self.profile_plot, self.sd_plot):
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#ffd24a"))
            plot.addItem(line)
            self.markers.append(line)
        if self.shown_slice is not None and self.profile is not None:
            for m in self.markers:
                m.setValue(float(self.profile.z_mm[self.shown_slice]))

    def _profile_clicked(self, plot: pg.PlotWidget, ev) -> None:
        """A click in the mean or SD plot shows the generated slice nearest to that z."""
        if self.profile is None:
            return
        vb = plot.getPlotItem().vb
        if vb.sceneBoundingRect().contains(ev.scenePos()):
            z = vb.mapSceneToView(ev.scenePos()).x()
            self.show_generated_slice(int(np.argmin(np.abs(self.profile.z_mm - z))))

    def show_generated_slice(self, k: int | None) -> None:
        """Show generated slice ``k`` (array index) before / after / after - before."""
        if self.profile is None or k is None:
            return
        p = self.profile
        k = int(np.clip(k, 0, len(p.z_mm) - 1))
        self.shown_slice = k
        method = self.after_combo.currentData()
        after = p.icnet[k] if method == "icnet" else p.histogram[k]
        before = p.before[k]
        diff = after - before
        scale = symmetric_scale(diff)
        label = "IC-Net" if method == "icnet" else "histogram matching"
        st = p.stats
        self.gen_panels["before"].set_image(before, ROI_LEVELS)
        self.gen_panels["before"].set_caption(f"slice {k} (z {p.z_mm[k]:.1f} mm): ROI mean "
                                              f"{st['before']['mean'][k]:.1f} HU, SD {st['before']['sd'][k]:.1f}")
        self.gen_panels["after"].set_title(f"after {label}")
        self.gen_panels["after"].set_image(after, ROI_LEVELS)
        self.gen_panels["after"].set_caption(f"ROI mean {st[method]['mean'][k]:.1f} HU, SD {st[method]['sd'][k]:.1f}")
        self.gen_panels["diff"].set_title(f"after {label} - before")
        self.gen_panels["diff"].set_image(diff, (-scale, scale))
        self.gen_panels["diff"].set_caption(f"mean {diff.mean():+.2f} HU, scale +-{scale:g} HU")
        for m in getattr(self, "markers", []):
            m.setValue(float(p.z_mm[k]))

    def shutdown(self) -> None:
        for w in (self.sweep_worker, self.profile_worker, self._drift_worker):
            if w is not None:
                w.quit()
