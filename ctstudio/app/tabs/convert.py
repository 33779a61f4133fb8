"""The Convert tab: reconstruction-kernel conversion (GGCL) or 3D cGAN restoration of the current volume.

A thin layer over :func:`ctstudio.pipelines.convert.convert` (the job ``ctstudio convert`` runs), driven
through :mod:`ctstudio.app.workers`:

* the model comes from the shared :class:`~ctstudio.app.widgets.models_panel.ModelsPanel` (kinds ggcl and
  cgan); its card fills the options: a kernel model's target kernel (its domains; by default the other kernel
  than the input's), a cGAN's task (fixed by the model), block overlap and "degrade first";
* the input is the viewer's current volume; its kernel and scanner come from the DICOM header, and
  :func:`ctstudio.pipelines.model_fit.input_warnings` says when the model was not trained on them;
* the run is off the UI thread with progress (slices or blocks, ETA) and Cancel (within one batch); while it
  runs the compare view shows the input with the finished part (slices or blocks) tinted and outlined, redrawn at
  most ``LIVE_HZ`` times a second. The pipeline reports where each batch went but not its values (the blended
  blocks exist only at the end), so the region is outlined over the input rather than replaced;
* the result opens in a :class:`~ctstudio.app.widgets.compare.CompareView`: source | converted | source -
  converted, synced slice, cursor, zoom and window;
* an optional reference volume (the real target kernel) gives PSNR / SSIM over the volume and per slice, plotted
  along z (:func:`ctstudio.pipelines.convert.reference_scores`, the numbers ``convert --reference`` prints);
  a click on the plot shows that slice;
* Save writes the converted volume (synthetic-marked as the CLI does; NIfTI gets its provenance in a
  ``NAME.provenance.json`` sidecar), never onto the source or the reference, never over a file without a
  confirmation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
                               QInputDialog, QLabel, QMessageBox, QProgressBar, QPushButton, QScrollArea,
                               QSpinBox, QSplitter, QVBoxLayout, QWidget)

from ctstudio.app.widgets.compare import CompareView
from ctstudio.app.widgets.models_panel import ModelsPanel
from ctstudio.app.widgets.window_bar import WindowBar
from ctstudio.errors import CTStudioError, InputError
from ctstudio.io.sidecar import write_provenance_sidecar
from ctstudio.volume import Volume

TITLE = "Convert"
ORDER = 30
#: the most redraws a second of the finished region while a conversion runs
LIVE_HZ = 4


def format_eta(ev: dict) -> str:
    """"12 of 32 slices, 3.1 s, about 5 s left" from an event of the jobs schema."""
    total = ev.get("total")
    unit = ev.get("unit", "step")
    text = f"{ev.get('done', 0)} of {total} {unit}s" if total else f"{ev.get('done', 0)} {unit}s"
    text += f", {ev.get('seconds', 0.0):.1f} s"
    if ev.get("eta") is not None:
        text += f", about {ev['eta']:.0f} s left"
    return text


class Tab(QWidget):
    """See the module doc."""

    def __init__(self, main_window) -> None:
        super().__init__(main_window)
        self.mw = main_window
        self.worker = None
        self.result = None  # the last ConvertResult
        self.scores: dict | None = None  # reference_scores of the output (and "input")
        self.reference: Volume | None = None
        self.reference_path: str | None = None
        self.reference_name = ""
        self.last_event: dict | None = None
        self.source_path: str | None = None  # the file the converted volume came from
        self.source_label = ""
        self.degraded = False  # the last run degraded its input first (cGAN demonstration)
        #: the finished part of the running conversion (bool, the input's shape), outlined in the compare view
        self.done_mask: np.ndarray | None = None
        self._mask_dirty = False
        self.region_redraws = 0  # how often the outline was redrawn (coalesced: at most LIVE_HZ a second)
        self._live_timer = QTimer(self)
        self._live_timer.setInterval(int(1000 / LIVE_HZ))
        self._live_timer.timeout.connect(self._flush_region)

        outer = QHBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        split = QSplitter(Qt.Orientation.Horizontal)
        outer.addWidget(split)

        # -- left: model, input, options, run, reference, save ------------------------------------------
        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(0, 0, 0, 0)
        box = QGroupBox("Model")
        bl = QVBoxLayout(box)
        self.models = ModelsPanel(main_window, kinds=("ggcl", "cgan"), purpose="the Convert tab")
        bl.addWidget(self.models)
        lay.addWidget(box, 2)
        self.models.list.currentRowChanged.connect(lambda *_: self._model_changed())
        self.models.model_loaded.connect(lambda *_: self._model_changed())

        box = QGroupBox("Input")
        fl = QFormLayout(box)
        self.input_label = QLabel("no volume open: open one in the Viewer (File > Open)")
        self.input_label.setWordWrap(True)
        fl.addRow("Volume", self.input_label)
        self.kernel_label = QLabel("-")
        fl.addRow("Kernel", self.kernel_label)
        self.warning_label = QLabel("")
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #e0a030;")
        fl.addRow(self.warning_label)
        lay.addWidget(box)

        box = QGroupBox("Conversion")
        fl = QFormLayout(box)
        self.target_combo = QComboBox()
        self.target_combo.setToolTip("the reconstruction kernel to convert to (the model's kernels)")
        self.target_label = QLabel("Target kernel")
        fl.addRow(self.target_label, self.target_combo)
        self.task_label = QLabel("-")
        self.task_title = QLabel("cGAN task")
        fl.addRow(self.task_title, self.task_label)
        self.overlap_spin = QSpinBox()
        self.overlap_spin.setRange(0, 16)
        self.overlap_spin.setValue(8)
        self.overlap_spin.setSuffix(" voxels")
        self.overlap_spin.setToolTip("overlap of neighbouring 32³ blocks (blended); 0 = abutting blocks (seams)")
        self.overlap_title = QLabel("Block overlap")
        fl.addRow(self.overlap_title, self.overlap_spin)
        self.degrade_check = QCheckBox("Degrade the input first (as in training: to demonstrate on a clean CT)")
        fl.addRow(self.degrade_check)
        lay.addWidget(box)

        row = QHBoxLayout()
        self.run_button = QPushButton("Convert")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        lay.addWidget(self.progress)
        self.progress_label = QLabel("")
        self.progress_label.setWordWrap(True)
        lay.addWidget(self.progress_label)

        box = QGroupBox("Reference (the real target, optional)")
        rl = QVBoxLayout(box)
        row = QHBoxLayout()
        self.reference_button = QPushButton("Reference volume...")
        self.reference_button.setToolTip("the same scan reconstructed with the target kernel: PSNR / SSIM")
        self.reference_button.clicked.connect(self.reference_dialog)
        self.clear_reference_button = QPushButton("Clear")
        self.clear_reference_button.clicked.connect(lambda: self.set_reference(None))
        row.addWidget(self.reference_button)
        row.addWidget(self.clear_reference_button)
        rl.addLayout(row)
        self.reference_label = QLabel("none")
        self.reference_label.setWordWrap(True)
        rl.addWidget(self.reference_label)
        self.metrics_label = QLabel("")
        self.metrics_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        rl.addWidget(self.metrics_label)
        lay.addWidget(box)

        row = QHBoxLayout()
        self.save_button = QPushButton("Save as NIfTI...")
        self.save_button.clicked.connect(lambda: self.save_dialog("nifti"))
        self.save_dicom_button = QPushButton("Save as DICOM...")
        self.save_dicom_button.clicked.connect(lambda: self.save_dialog("dicom"))
        self.show_button = QPushButton("Open in Viewer")
        self.show_button.setToolTip("make the converted volume the current volume")
        self.show_button.clicked.connect(self.show_in_viewer)
        for b in (self.save_button, self.save_dicom_button, self.show_button):
            b.setEnabled(False)
            row.addWidget(b)
        lay.addLayout(row)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(left)
        scroll.setMinimumWidth(380)
        split.addWidget(scroll)

        # -- right: compare view and the per-slice metrics -------------------------------------------------
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        self.compare = CompareView(right)
        self.window_bar = WindowBar(self.compare.state)
        rl.addWidget(self.window_bar)
        vsplit = QSplitter(Qt.Orientation.Vertical)
        vsplit.addWidget(self.compare)
        self.plot = pg.GraphicsLayoutWidget()
        self.psnr_plot = self.plot.addPlot(row=0, col=0)
        self.ssim_plot = self.plot.addPlot(row=0, col=1)
        for p, label in ((self.psnr_plot, "PSNR (dB)"), (self.ssim_plot, "SSIM")):
            p.setLabel("bottom", "axial slice (array index)")
            p.setLabel("left", label)
            p.showGrid(x=True, y=True, alpha=0.3)
            p.getAxis("left").enableAutoSIPrefix(False)
            p.addLegend(offset=(-10, -10))
            p.scene().sigMouseClicked.connect(self._plot_clicked)
        self.slice_lines = [pg.InfiniteLine(angle=90, pen=pg.mkPen("#ffd24a")) for _ in range(2)]
        self.psnr_plot.addItem(self.slice_lines[0])
        self.ssim_plot.addItem(self.slice_lines[1])
        self.plot.setMinimumHeight(150)
        vsplit.addWidget(self.plot)
        vsplit.setSizes([600, 200])
        self.plot.hide()
        rl.addWidget(vsplit, 1)
        split.addWidget(right)
        split.setSizes([420, 900])
        self.compare.state.cursorChanged.connect(self._cursor_moved)

        main_window.volume_changed.connect(lambda *_: self._input_changed())
        self._input_changed()
        self._model_changed()

    # -- model and input ---------------------------------------------------------------------------------
    def model_meta(self) -> dict:
        e = self.models.selected_entry()
        return e.meta if e is not None and not e.error else {}

    def _model_changed(self) -> None:
        meta = self.model_meta()
        kind = meta.get("kind", "")
        cfg = meta.get("config", {}) if isinstance(meta.get("config"), dict) else {}
        ggcl, cgan = kind == "ggcl", kind == "cgan"
        for w in (self.target_label, self.target_combo):
            w.setVisible(ggcl)
        for w in (self.task_title, self.task_label, self.overlap_title, self.overlap_spin, self.degrade_check):
            w.setVisible(cgan)
        if ggcl:
            from ctstudio.pipelines.convert import choose_target
            from ctstudio.pipelines.model_fit import trained_kernels

            domains = trained_kernels(meta)
            current = self.target_combo.currentText()
            self.target_combo.clear()
            self.target_combo.addItems(domains)
            source = self.mw.volume.metadata.kernel if self.mw.volume is not None else ""
            try:
                pick = choose_target(domains, source, None)
            except CTStudioError:
                pick = current if current in domains else (domains[-1] if domains else "")
            self.target_combo.setCurrentText(pick)
        if cgan:
            block = int(cfg.get("block", 32))
            self.task_label.setText(f"{cfg.get('task', '?')} ({block}³ blocks; the task is fixed by the model)")
            self.overlap_spin.setRange(0, block // 2)
        self._update_warnings()
        self._update_buttons()

    def _input_changed(self) -> None:
        v = self.mw.volume
        if v is None:
            self.input_label.setText("no volume open: open one in the Viewer (File > Open)")
            self.kernel_label.setText("-")
        else:
            z, y, x = v.shape
            self.input_label.setText(f"{self.mw.volume_label}: {z} x {y} x {x} (slices x rows x columns)")
            md = v.metadata
            scanner = " ".join(s for s in (md.manufacturer, md.manufacturer_model) if s)
            self.kernel_label.setText((md.kernel or "unknown (no DICOM header)") + (f", {scanner}" if scanner else ""))
        if self.model_meta().get("kind") == "ggcl":
            self._model_changed()
        else:
            self._update_warnings()
            self._update_buttons()

    def warnings(self) -> list[str]:
        """What the user is warned about before a run (model not trained on this kernel / scanner, size)."""
        from ctstudio.pipelines.model_fit import input_warnings

        meta, v = self.model_meta(), self.mw.volume
        if not meta or v is None:
            return []
        out = input_warnings(meta, v.metadata)
        if meta.get("kind") == "cgan":
            block = int(meta.get("config", {}).get("block", 32))
            small = [n for n in v.shape if n < block]
            if small:
                out.append(f"The volume ({'x'.join(map(str, v.shape))}) is smaller than one {block}³ block along "
                           "some axis: it is padded by reflection for the model and cropped back.")
        if float(v.array.min()) >= -200:
            out.append(f"The volume's values start at {int(v.array.min())}: this does not look like CT in HU.")
        return out

    def _update_warnings(self) -> None:
        w = self.warnings()
        self.warning_label.setText("\n".join(f"Warning: {s}" for s in w))
        self.warning_label.setVisible(bool(w))

    def _update_buttons(self) -> None:
        running = self.worker is not None
        self.run_button.setEnabled(not running and self.mw.volume is not None and bool(self.model_meta()))
        self.cancel_button.setEnabled(running)
        has = self.result is not None and not running
        for b in (self.save_button, self.save_dicom_button, self.show_button):
            b.setEnabled(has)

    # -- the run -----------------------------------------------------------------------------------------
    def request(self):
        """The ConvertRequest for the current choices (InputError when something is missing)."""
        from ctstudio.pipelines.convert import ConvertRequest

        e = self.models.selected_entry()
        if self.mw.volume is None:
            raise InputError("open a volume first (File > Open); it is the input of the conversion")
        if e is None or e.error:
            raise InputError(e.error if e is not None else "choose a model first")
        kind = e.kind
        return ConvertRequest(volume=self.mw.volume, model=str(e.path),
                              target=self.target_combo.currentText() or None if kind == "ggcl" else None,
                              overlap=self.overlap_spin.value(), degrade=kind == "cgan" and self.degrade_check.isChecked(),
                              reference=self.reference, device=self.models.device())

    def run(self):
        """Start the conversion off the UI thread; returns the worker (None when it cannot start)."""
        from ctstudio.app.workers import start_worker
        from ctstudio.pipelines.convert import convert

        try:
            req = self.request()
        except CTStudioError as exc:
            self.mw.show_error("Cannot convert", str(exc))
            return None
        self.source_path = self.mw.volume_path
        self.source_label = self.mw.volume_label
        self.degraded = req.degrade
        self.last_event = None
        self._start_live(req.volume)
        self.progress.setRange(0, 0)
        self.progress_label.setText(f"loading {Path(req.model).stem} ...")
        self.worker = start_worker(convert, req, kind="convert-tab", on_progress=self._progress,
                                   on_result=self._done, on_error=self._failed, on_finished=self._finished)
        self.worker.aborted.connect(self._aborted)
        self._update_buttons()
        return self.worker

    # -- live view of a run ------------------------------------------------------------------------------
    def _start_live(self, volume: Volume) -> None:
        """Show the input in the compare view with the finished part outlined as the run goes.

        The pipeline yields where each batch went (slice ``first``..``done``, or the blocks' starts and size),
        not the converted values (the blended result exists only at the end), so the outline marks the
        finished region over the input; the converted volume replaces it when the run ends."""
        self.result = None
        self.scores = None
        self.metrics_label.setText("")
        self.plot.hide()
        self.done_mask = np.zeros(volume.shape, dtype=bool)
        self._mask_dirty = False
        self.region_redraws = 0
        self.compare.set_volumes(volume, volume, names=("source", "converting: finished part outlined"))
        self.compare.view_diff.title = "source - converted (at the end)"
        self.compare.view_diff.refresh()
        self.compare.state.set_cursor(self.compare.view_a.display.centre())
        self.compare.set_region_mask(self.done_mask)
        self._live_timer.start()

    def _mark_done(self, ev: dict) -> None:
        """Add the batch an event reports to the finished region (drawn by the timer, not here)."""
        m = self.done_mask
        if m is None:
            return
        if ev.get("stage") == "slice" and "first" in ev:
            m[int(ev["first"]):int(ev["done"])] = True
        elif ev.get("stage") == "block" and "blocks" in ev:
            b = int(ev.get("block", 32))
            for z, y, x in ev["blocks"]:
                m[z:z + b, y:y + b, x:x + b] = True
        else:
            return
        self._mask_dirty = True

    def _flush_region(self) -> None:
        if self._mask_dirty and self.done_mask is not None:
            self._mask_dirty = False
            self.region_redraws += 1
            self.compare.set_region_mask(self.done_mask)

    def _stop_live(self) -> None:
        self._live_timer.stop()
        self._mask_dirty = False
        self.compare.set_region_mask(None)

    def cancel(self) -> None:
        if self.worker is not None:
            self.progress_label.setText("cancelling (at the end of this batch) ...")
            self.worker.quit()

    def _progress(self, ev: dict) -> None:
        self.last_event = ev
        stage = ev.get("stage")
        self._mark_done(ev)
        if stage == "start":
            if ev.get("kind") == "ggcl":
                self.progress_label.setText(f"converting {ev.get('source_kernel') or 'unknown kernel'} -> "
                                            f"{ev.get('target')} on {ev.get('device')}")
            else:
                self.progress_label.setText(f"{ev.get('task')} on {ev.get('block')}³ blocks, overlap "
                                            f"{ev.get('overlap')}, on {ev.get('device')}")
        elif stage in ("slice", "block") and ev.get("total"):
            self.progress.setRange(0, int(ev["total"]))
            self.progress.setValue(int(ev["done"]))
            where = (f"slices from {ev['first']}" if stage == "slice" and "first" in ev else
                     f"blocks at z {sorted({b[0] for b in ev.get('blocks', [])})}" if stage == "block" else "")
            self.progress_label.setText(f"{format_eta(ev)}   ({where})" if where else format_eta(ev))
        elif stage == "scoring":
            self.progress_label.setText("PSNR / SSIM against the reference ...")

    def _done(self, result) -> None:
        self._stop_live()
        self.result = result
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        secs = self.last_event.get("seconds", 0.0) if self.last_event else 0.0
        self.progress_label.setText(f"{result.description} ({secs:.1f} s)")
        kernel = result.input.metadata.kernel
        src = f"source {kernel}" if kernel else "source"
        what = f"converted ({result.target})" if result.kind == "ggcl" else "converted (cGAN)"
        if self.degraded:
            src = f"{src}, degraded"
        self.compare.set_volumes(result.input, result.volume, names=(src, what))
        self.compare.view_diff.title = "source - converted"
        self.compare.view_diff.refresh()
        disp = self.compare.view_a.display
        self.compare.state.set_cursor(disp.centre())  # the middle slice, crosshair in the centre
        if result.scores is not None:
            self._show_scores(result.scores)
        elif self.reference is not None:
            self._score_reference()
        self.mw.status(result.description, 10000)

    def _failed(self, exc: BaseException) -> None:
        self._stop_live()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress_label.setText(f"failed: {exc}")
        self.mw.report_exception("Conversion failed", exc)

    def _aborted(self) -> None:
        self._stop_live()
        self.compare.view_b.title = "cancelled: nothing kept"
        self.compare.view_b.refresh()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        done = self.last_event
        self.progress_label.setText("cancelled" + (f" after {done['done']} of {done['total']} {done['unit']}s; "
                                                   "nothing was kept" if done and done.get("total") else ""))

    def _finished(self) -> None:
        self.worker = None
        self._update_buttons()

    # -- reference ---------------------------------------------------------------------------------------
    def reference_dialog(self) -> None:
        start = str(self.mw.settings.value("convert/last_reference_dir", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, "Reference volume (the real target kernel)", start,
                                              "Volumes (*.nii *.nii.gz *.mha *.mhd *.nrrd *.nhdr *.dcm);;All files (*)")
        if path:
            self.mw.settings.setValue("convert/last_reference_dir", str(Path(path).parent))
            self.load_reference(path)

    def load_reference(self, path):
        """Read a reference volume off the UI thread; returns the worker."""
        from ctstudio.app.workers import load_volume_job, start_worker

        self.reference_label.setText(f"reading {path} ...")
        return start_worker(load_volume_job, str(path), kind="convert-reference",
                            on_result=lambda vol: self.set_reference(vol, Path(path).name, str(path)),
                            on_error=lambda exc: (self.reference_label.setText("none"),
                                                  self.mw.report_exception("Cannot read the reference", exc, path)))

    def set_reference(self, volume: Volume | None, name: str = "", path: str | None = None) -> None:
        """Use ``volume`` as the reference (None: no reference); scores the current result at once."""
        self.reference, self.reference_name, self.reference_path = volume, name, path
        self.scores = None
        self.metrics_label.setText("")
        if volume is None:
            self.reference_label.setText("none")
            self.plot.hide()
            return
        shape = "x".join(map(str, volume.shape))
        self.reference_label.setText(f"{name or 'reference'}: {shape}, kernel {volume.metadata.kernel or 'unknown'}")
        if self.mw.volume is not None and volume.shape != self.mw.volume.shape:
            self.reference_label.setText(self.reference_label.text() + f"  - its shape differs from the input's "
                                         f"({'x'.join(map(str, self.mw.volume.shape))}): it will be refused")
        if self.result is not None:
            self._score_reference()

    def _score_reference(self):
        from ctstudio.app.workers import start_worker

        if self.result is None or self.reference is None:
            return None
        ref, res = self.reference, self.result

        def job(*, cancel=None):
            from ctstudio.jobs import Progress
            from ctstudio.pipelines.convert import reference_scores

            yield Progress("score", 2, "volume").event("start")
            return {"input": reference_scores(ref, res.input), "output": reference_scores(ref, res.volume)}

        self.metrics_label.setText("scoring against the reference ...")
        return start_worker(job, kind="convert-score", on_result=self._show_scores,
                            on_error=lambda exc: (self.metrics_label.setText(""),
                                                  self.mw.report_exception("Cannot score", exc)))

    def _show_scores(self, scores: dict) -> None:
        self.scores = scores
        i, o = scores["input"], scores["output"]
        self.metrics_label.setText(f"against {self.reference_name or 'the reference'} (12-bit range):\n"
                                   f"converted: PSNR {o['psnr_db']:.2f} dB   SSIM {o['ssim']:.4f}\n"
                                   f"source:      PSNR {i['psnr_db']:.2f} dB   SSIM {i['ssim']:.4f}")
        for p, key in ((self.psnr_plot, "psnr_db_per_slice"), (self.ssim_plot, "ssim_per_slice")):
            p.clear()
            p.addItem(self.slice_lines[0 if p is self.psnr_plot else 1])
            z = np.arange(len(o[key]))
            yo = np.asarray(o[key], dtype=float)
            yi = np.asarray(i[key], dtype=float)
            p.plot(z, np.where(np.isfinite(yo), yo, np.nan), pen=pg.mkPen("#40c0ff", width=2), symbol="o",
                   symbolSize=5, symbolBrush="#40c0ff", name="converted", connect="finite")
            p.plot(z, np.where(np.isfinite(yi), yi, np.nan), pen=pg.mkPen("#c0c0c0", width=1, style=Qt.PenStyle.DashLine),
                   name="source", connect="finite")
        self.plot.show()
        self._cursor_moved(self.compare.state.cursor)
        QTimer.singleShot(0, self.compare.reset_view)  # the views shrank to make room for the plot: refit all three

    def _plot_clicked(self, ev) -> None:
        for p in (self.psnr_plot, self.ssim_plot):
            if p.sceneBoundingRect().contains(ev.scenePos()):
                k = int(round(p.vb.mapSceneToView(ev.scenePos()).x()))
                self.show_slice(k)
                return

    def show_slice(self, k: int) -> None:
        """Show axial slice ``k`` (array index) in the compare view."""
        disp = self.compare.view_a.display
        if disp is None:
            return
        k = int(np.clip(k, 0, disp.volume.shape[0] - 1))
        _, j, i = disp.original_index(self.compare.state.cursor)
        self.compare.state.set_cursor(disp.canonical_index((k, j, i)))

    def _cursor_moved(self, cursor) -> None:
        disp = self.compare.view_a.display
        if disp is None:
            return
        k = disp.original_index(cursor)[0]
        for line in self.slice_lines:
            line.setValue(k)

    # -- save --------------------------------------------------------------------------------------------
    def show_in_viewer(self) -> None:
        if self.result is not None:
            self.mw.set_volume(self.result.volume, f"{self.source_label} converted")

    def confirm_overwrite(self, path: Path) -> bool:
        """Ask before replacing an existing file or folder (tests replace this)."""
        answer = QMessageBox.question(self, "Replace?", f"{path} exists.\nReplace it with the converted volume?")
        return answer == QMessageBox.StandardButton.Yes

    def save_dialog(self, fmt: str) -> None:
        stem = Path(self.source_path).name.split(".")[0] if self.source_path else "converted"
        target = self.result.target if self.result is not None and self.result.target else "converted"
        start = str(Path(str(self.mw.settings.value("last_dir", str(Path.home())))) / f"{stem}_synthetic_{target}")
        if fmt == "nifti":
            path, _ = QFileDialog.getSaveFileName(self, "Save the converted volume as NIfTI", start + ".nii.gz",
                                                  "NIfTI (*.nii.gz *.nii)",
                                                  options=QFileDialog.Option.DontConfirmOverwrite)
            if path and not path.lower().endswith((".nii", ".nii.gz")):
                path += ".nii.gz"
        else:
            parent = QFileDialog.getExistingDirectory(self, "Save as DICOM series: choose the parent folder",
                                                      str(Path(start).parent))
            if not parent:
                return
            name, ok = QInputDialog.getText(self, "Save as DICOM series", "New folder for the series:",
                                            text=f"{Path(start).name}_dicom")
            path = str(Path(parent) / name) if ok and name else ""
        if path:
            self.save(path, fmt)

    def save(self, path, fmt: str = "nifti", overwrite: bool | None = None):
        """Write the converted volume (synthetic) off the UI thread; returns the worker, or None when refused."""
        from ctstudio.app.workers import save_volume_job, start_worker
        from ctstudio.pipelines.outputs import check_output

        if self.result is None:
            return None
        vol = self.result.volume
        path = Path(path)
        inputs = [self.source_path, self.reference_path, *self.result.input.provenance.source_files]
        try:
            check_output(path, inputs=inputs, overwrite=True)  # never onto an input, even when confirmed
            if path.exists() and overwrite is None:
                overwrite = self.confirm_overwrite(path)
            check_output(path, inputs=inputs, overwrite=bool(overwrite))
        except CTStudioError as exc:
            self.mw.show_error("Not saved", str(exc))
            return None

        def done(out) -> None:
            if fmt == "nifti":
                write_provenance_sidecar(vol, out)
            self.mw.status(f"saved the converted volume to {out}", 10000)
            self.progress_label.setText(f"saved {out}")

        return start_worker(save_volume_job, vol, str(path), format=fmt, overwrite=bool(overwrite), synthetic=True,
                            on_result=done, on_error=lambda exc: self.mw.report_exception("Could not save", exc, path))

    def shutdown(self) -> None:
        if self.worker is not None:
            self.worker.quit()
