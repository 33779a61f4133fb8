"""The Generate tab: load a score model, watch a CT volume being generated slice by slice, save it, study it.

The tab is a thin layer over :func:`ctstudio.pipelines.generate.generate` (the job ``ctstudio generate``
runs), driven through :mod:`ctstudio.app.workers`:

* the model comes from the shared :class:`~ctstudio.app.widgets.models_panel.ModelsPanel` (score models; the
  IC-Net is chosen below it), the device from the panel;
* the seed is the volume the user last opened (the seed slice from a spin box or the crosshair) or all air;
  when the seed's grid differs from the model's, the tab says so before the run (the pipeline's own note);
* each finished slice is placed in a :class:`~ctstudio.app.widgets.growing.GrowingVolume` (the seed side of
  the seed volume plus the generated slices, one volume growing in place) and shown at once in the tab's
  views and in the Viewer tab (``MainWindow.update_volume``: crosshair, window, zoom and 3D camera kept);
  the generated range is marked in every view (a coloured line and a label);
* Cancel stops within one sampler step and keeps every finished slice; Continue carries on exactly where the
  run stopped (the last slice event's ``state``), the same slices as an uninterrupted run;
* the result: provenance, Save as NIfTI / DICOM (synthetic; never onto the seed file, never over a file
  without a confirmation), Compare with the real continuation (the Viewer's compare mode), Add to study pool.

torch is imported only in workers (the first time this tab is shown, to list the samplers and devices).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QInputDialog, QLabel, QMessageBox, QProgressBar, QPushButton,
                               QRadioButton, QScrollArea, QSpinBox, QSplitter, QTextBrowser, QVBoxLayout, QWidget)

from ctstudio.app.widgets.growing import GrowingVolume
from ctstudio.app.widgets.models_panel import ModelsPanel, scan_models
from ctstudio.errors import CTStudioError, InputError
from ctstudio.io.sidecar import sidecar_path, write_provenance_sidecar
from ctstudio.jobs import Progress
from ctstudio.volume import Metadata, Provenance, Volume

TITLE = "Generate"
ORDER = 20

#: how the samplers are named in the window (a sampler without a label here is listed by its name)
SAMPLER_LABELS = {"dpmpp_2m": "DPM-Solver++(2M), 12 calls (fast default)", "heun": "Heun (for noised inpainting)",
                  "pc": "predictor-corrector (paper, slow)"}
#: the colour of the generated range in the views
MARK_COLOUR = "#ff8c1a"


def sampler_choices_job(*, cancel=None):
    """(sampler names, default steps) from :mod:`ctstudio.diffusion.samplers` (imports torch: run in a worker)."""
    from ctstudio.diffusion.samplers import DEFAULT_STEPS, SAMPLERS, default_sampler

    yield Progress("samplers", 1, "probe").event("start")
    return list(SAMPLERS), dict(DEFAULT_STEPS), default_sampler("clean")


def generate_job(req, threads: int | None = None, *, cancel=None):
    """:func:`ctstudio.pipelines.generate.generate` with torch's CPU thread count set first (``threads``; the
    tab leaves one core to the window: on a busy 2-core machine 2 threads were 17x slower than 1)."""
    from ctstudio.pipelines import generate as pipeline

    if threads:
        import torch

        torch.set_num_threads(int(threads))
    result = yield from pipeline.generate(req, cancel=cancel)
    return result


def run_provenance(model_meta: dict, runs: list[dict], seed_volume: Volume | None) -> Provenance:
    """The provenance of everything generated so far (one run, or a run and its continuations).

    ``runs``: one dict per run part (sampler, steps, condition, seed, icnet, icnet_model, slices, seconds,
    network_calls, stopped)."""
    from ctstudio.diffusion.loading import model_version  # torch is loaded by now (a run happened)

    first = runs[0]
    n = sum(r["slices"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    calls = sum(r["network_calls"] for r in runs)
    sources = tuple(seed_volume.provenance.source_files) if seed_volume is not None else ()
    params = {"sampler": first["sampler"], "steps": first["steps"], "condition": first["condition"],
              "seed": first["seed"], "k": model_meta.get("k"), "icnet": bool(first["icnet_model"]),
              "icnet_model": first["icnet_model"], "n_slices": n, "seed_slice": first["seed_slice"],
              "seconds": round(seconds, 2), "network_calls": calls, "direction": "inferior",
              "seed_volume": (sources[0] if sources else "(in memory)") if seed_volume is not None else None,
              "parts": len(runs), "stopped_and_continued": sum(1 for r in runs if r["stopped"])}
    steps = (f"ASCII(K={model_meta.get('k')}) generation of {n} slices in {len(runs)} part(s) (Generate tab), "
             f"{first['sampler']} {first['steps']} steps, condition {first['condition']}, seed {first['seed']}, "
             f"IC-Net {first['icnet_model'] or 'off'}",)
    return Provenance(source_files=sources, model=str(model_meta.get("name")),
                      model_version=model_version(model_meta), parameters=params, steps=steps)


def provenance_text(prov: Provenance) -> str:
    p = prov.parameters
    return (f"model {prov.model} (version {prov.model_version})\n"
            f"sampler {p['sampler']}, {p['steps']} steps, condition {p['condition']}, random seed {p['seed']}\n"
            f"IC-Net: {p['icnet_model'] or 'off'}\n"
            f"{p['n_slices']} slices after seed slice {p['seed_slice']} of {p['seed_volume']}"
            if p.get("seed_volume") else
            f"model {prov.model} (version {prov.model_version})\n"
            f"sampler {p['sampler']}, {p['steps']} steps, condition {p['condition']}, random seed {p['seed']}\n"
            f"IC-Net: {p['icnet_model'] or 'off'}\n{p['n_slices']} slices from an all-air seed") + (
        f"\n{p['seconds']:.1f} s, {p['network_calls']} network calls in {p['parts']} part(s)")


def add_to_study_pool(volume: Volume, folder, name: str | None = None, pool: str = "synthetic") -> Path:
    """Write ``volume`` into a reader-study case folder (the layout ``ctstudio study demo`` / ``study new`` use:
    ``FOLDER/cases/<pool>/NAME.nii.gz``) with its provenance in a sidecar ``NAME.provenance.json``.

    The case file itself carries no model name or synthetic series description (a study audit would flag it
    as a leak; readers get opaque tokens, scripts get files), only the geometry and the voxels; the sidecar
    keeps the full provenance. The name is neutral (``case_<random>``) unless given. Never overwrites."""
    from ctstudio.io import write_volume
    from ctstudio.pipelines.outputs import check_output

    name = name or f"case_{uuid.uuid4().hex[:8]}"
    out_dir = Path(folder).expanduser() / "cases" / pool
    out = check_output(out_dir / f"{name}.nii.gz")
    check_output(sidecar_path(out))
    out_dir.mkdir(parents=True, exist_ok=True)
    neutral = volume.replace(metadata=Metadata(slice_thickness=volume.metadata.slice_thickness),
                             provenance=Provenance())
    write_volume(neutral, out, format="nifti", overwrite=False)
    write_provenance_sidecar(volume, out, pool=pool, written=time.strftime("%Y-%m-%dT%H:%M:%S"))
    return out


class Tab(QWidget):
    """See the module doc."""

    #: a run part ended: "done", "cancelled" or "error"
    run_finished = Signal(str)
    #: a slice arrived and is on screen: its array row in the growing volume
    slice_shown = Signal(int)

    def __init__(self, main_window) -> None:
        super().__init__(main_window)
        self.mw = main_window
        self.samplers: list[str] = []
        self.default_sampler = "dpmpp_2m"  # until the sampler list is read (in a worker: it imports torch)
        self.default_steps: dict[str, int] = {}
        self.grow: GrowingVolume | None = None
        self.request = None  # the GenerateRequest of the run (the first part)
        self.part_request = None  # the request of the part running now
        self.last_state = None
        self.runs: list[dict] = []
        self.run_results: list[Volume] = []
        self.provenance: Provenance | None = None
        self.model_meta: dict = {}
        self.worker = None
        self.running = False
        self.streaming_to_viewer = False
        self.user_volume: Volume | None = main_window.volume  # the seed candidate: what the user opened
        self.user_volume_label = main_window.volume_label
        self._own_volume_change = False
        self._activated = False
        self._part: dict | None = None
        self._build()
        main_window.volume_changed.connect(self._volume_changed)
        self._update_seed_info()

    # -- construction ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QHBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        split = QSplitter(Qt.Orientation.Horizontal)
        outer.addWidget(split)
        left = QWidget()
        col = QVBoxLayout(left)
        col.setContentsMargins(0, 0, 4, 0)

        box = QGroupBox("Model")
        bl = QVBoxLayout(box)
        self.models = ModelsPanel(self.mw, kinds=("score",), purpose="the Generate tab")
        self.models.list.currentRowChanged.connect(lambda *_: self._model_selected())
        self.models.model_loaded.connect(self._model_loaded)
        bl.addWidget(self.models)
        icrow = QHBoxLayout()
        self.icnet_check = QCheckBox("IC-Net calibration")
        self.icnet_check.setToolTip("calibrate each generated slice's intensities with an IC-Net (the paper's)")
        self.icnet_combo = QComboBox()
        icrow.addWidget(self.icnet_check)
        icrow.addWidget(self.icnet_combo, 1)
        bl.addLayout(icrow)
        col.addWidget(box)

        seedbox = QGroupBox("Seed")
        form = QFormLayout(seedbox)
        self.seed_volume_radio = QRadioButton("the volume last opened in the viewer")
        self.seed_air_radio = QRadioButton("all air (-1024 HU)")
        group = QButtonGroup(self)
        group.addButton(self.seed_volume_radio)
        group.addButton(self.seed_air_radio)
        self.seed_volume_radio.setChecked(True)
        self.seed_volume_radio.toggled.connect(lambda *_: self._update_seed_info())
        form.addRow(self.seed_volume_radio)
        form.addRow(self.seed_air_radio)
        self.seed_info = QLabel("")
        self.seed_info.setWordWrap(True)
        form.addRow(self.seed_info)
        srow = QHBoxLayout()
        self.seed_slice = QSpinBox()
        self.seed_slice.setRange(0, 0)
        self.seed_slice.valueChanged.connect(lambda *_: self._update_seed_info())
        self.crosshair_button = QPushButton("Use the crosshair's slice")
        self.crosshair_button.clicked.connect(self.use_crosshair_slice)
        srow.addWidget(self.seed_slice)
        srow.addWidget(self.crosshair_button)
        form.addRow("Seed slice", srow)
        col.addWidget(seedbox)

        runbox = QGroupBox("Run")
        rf = QFormLayout(runbox)
        self.n_slices = QSpinBox()
        self.n_slices.setRange(1, 5000)
        self.n_slices.setValue(16)
        rf.addRow("Slices", self.n_slices)
        self.sampler_combo = QComboBox()
        self.sampler_combo.addItem("(listing samplers...)")
        self.sampler_combo.setEnabled(False)
        self.sampler_combo.currentIndexChanged.connect(self._sampler_changed)
        rf.addRow("Sampler", self.sampler_combo)
        self.steps = QSpinBox()
        self.steps.setRange(1, 100000)
        self.steps.setValue(25)
        rf.addRow("Steps", self.steps)
        self.condition_combo = QComboBox()
        self.condition_combo.addItem("the model's best", None)
        rf.addRow("Condition", self.condition_combo)
        self.random_seed = QSpinBox()
        self.random_seed.setRange(0, 2**31 - 1)
        rf.addRow("Random seed", self.random_seed)
        import os

        self.threads = QSpinBox()
        self.threads.setRange(1, max(1, os.cpu_count() or 1))
        self.threads.setValue(max(1, (os.cpu_count() or 2) - 1))
        self.threads.setToolTip("torch CPU threads for the run (one core is left to the window)")
        rf.addRow("CPU threads", self.threads)
        self.follow_check = QCheckBox("Follow the newest slice")
        self.follow_check.setChecked(True)
        rf.addRow(self.follow_check)
        self.grid_note = QLabel("")
        self.grid_note.setWordWrap(True)
        self.grid_note.setStyleSheet("color: #b06000;")
        rf.addRow(self.grid_note)
        brow = QHBoxLayout()
        self.generate_button = QPushButton("Generate")
        self.generate_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.continue_button = QPushButton("Continue")
        self.continue_button.setToolTip("generate the number of slices above more, from where the run stopped")
        self.continue_button.clicked.connect(self.continue_run)
        self.continue_button.setEnabled(False)
        for b in (self.generate_button, self.cancel_button, self.continue_button):
            brow.addWidget(b)
        rf.addRow(brow)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m slices")
        rf.addRow(self.progress)
        self.progress_label = QLabel("")
        self.progress_label.setWordWrap(True)
        rf.addRow(self.progress_label)
        col.addWidget(runbox)

        resbox = QGroupBox("Result")
        rl = QVBoxLayout(resbox)
        self.provenance_view = QTextBrowser()
        self.provenance_view.setMaximumHeight(110)
        rl.addWidget(self.provenance_view)
        r1 = QHBoxLayout()
        self.save_nifti_button = QPushButton("Save NIfTI...")
        self.save_nifti_button.clicked.connect(lambda: self.save_dialog("nifti"))
        self.save_dicom_button = QPushButton("Save DICOM...")
        self.save_dicom_button.clicked.connect(lambda: self.save_dialog("dicom"))
        self.show_button = QPushButton("Show in Viewer")
        self.show_button.clicked.connect(self.show_in_viewer)
        for b in (self.save_nifti_button, self.save_dicom_button, self.show_button):
            r1.addWidget(b)
        rl.addLayout(r1)
        r2 = QHBoxLayout()
        self.compare_button = QPushButton("Compare with the real continuation")
        self.compare_button.clicked.connect(self.compare_with_real)
        self.pool_button = QPushButton("Add to study pool...")
        self.pool_button.clicked.connect(self.add_to_pool_dialog)
        r2.addWidget(self.compare_button)
        r2.addWidget(self.pool_button)
        rl.addLayout(r2)
        col.addWidget(resbox)
        col.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(left)
        scroll.setMinimumWidth(400)
        split.addWidget(scroll)

        from ctstudio.app.widgets.triplanar import TriPlanar

        right = QWidget()
        rlay = QVBoxLayout(right)
        rlay.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        self.view_label = QLabel("The volume being generated appears here (and in the Viewer tab).")
        top.addWidget(self.view_label, 1)
        self.check3d = QCheckBox("3D")
        self.check3d.toggled.connect(self._toggle_3d)
        top.addWidget(self.check3d)
        rlay.addLayout(top)
        self.view = TriPlanar(right)
        rlay.addWidget(self.view, 1)
        split.addWidget(right)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([440, 800])
        self._set_result_buttons()

    # -- the tab contract -----------------------------------------------------------------------------------
    def on_activated(self) -> None:
        """First time shown: list samplers and devices in workers (torch is imported there), load the model."""
        if self._activated:
            return
        self._activated = True
        from ctstudio.app.workers import start_worker

        self.models.probe_devices()
        start_worker(sampler_choices_job, kind="generate-samplers", on_result=self._samplers_listed,
                     on_error=lambda exc: self.progress_label.setText(f"cannot list the samplers: {exc}"))
        self._fill_icnet()
        entry = self.models.selected_entry()
        if entry is not None and not entry.error and self.models.loaded is None:
            self.models.load_selected()

    def shutdown(self) -> None:
        if self.worker is not None:
            self.worker.quit()
        self.view.shutdown()

    # -- choices --------------------------------------------------------------------------------------------
    def _samplers_listed(self, result) -> None:
        names, defaults, self.default_sampler = result
        self.samplers, self.default_steps = list(names), dict(defaults)
        self.sampler_combo.blockSignals(True)
        self.sampler_combo.clear()
        for n in names:
            self.sampler_combo.addItem(SAMPLER_LABELS.get(n, n), n)
        self.sampler_combo.setCurrentIndex(max(0, self.sampler_combo.findData(self.default_sampler)))
        self.sampler_combo.blockSignals(False)
        self.sampler_combo.setEnabled(True)
        self._sampler_changed()

    def _sampler_changed(self, *_args) -> None:
        name = self.sampler_combo.currentData()
        if name in self.default_steps:
            self.steps.setValue(int(self.default_steps[name]))

    def sampler(self) -> str:
        return self.sampler_combo.currentData() or self.default_sampler

    def set_sampler(self, name: str, steps: int | None = None) -> None:
        i = self.sampler_combo.findData(name)
        if i < 0:
            raise InputError(f"unknown sampler {name!r}")
        self.sampler_combo.setCurrentIndex(i)
        if steps is not None:
            self.steps.setValue(int(steps))

    def _fill_icnet(self) -> None:
        current = self.icnet_combo.currentData()
        self.icnet_combo.clear()
        for e in scan_models(("icnet",)):
            if not e.error:
                self.icnet_combo.addItem(e.name + ("  (demo)" if e.is_demo else ""), str(e.path))
        if current:
            self.icnet_combo.setCurrentIndex(max(0, self.icnet_combo.findData(current)))
        has = self.icnet_combo.count() > 0
        self.icnet_check.setEnabled(has)
        self.icnet_combo.setEnabled(has)
        self.icnet_check.setChecked(has and (self.icnet_check.isChecked() or current is None))
        if not has:
            self.icnet_check.setToolTip("no IC-Net model found (bundled or user folder)")

    def _model_selected(self) -> None:
        e = self.models.selected_entry()
        self.model_meta = dict(e.meta) if e is not None and not e.error else {}
        self._update_condition()
        self._update_seed_info()

    def _model_loaded(self, loaded) -> None:
        e = self.models.selected_entry()
        if e is not None and Path(loaded.path) == Path(e.path):
            self.model_meta = dict(loaded.meta)
            self._update_condition()

    def _conditional(self) -> bool:
        meta = self.model_meta
        if "conditional" in meta:
            return bool(meta["conditional"])
        training = meta.get("config", {}).get("training") or {}
        return float(training.get("cond_prob", 0.0) or 0.0) > 0

    def _update_condition(self) -> None:
        self.condition_combo.clear()
        if self._conditional():
            self.condition_combo.addItem("clean prior slices (the model's best)", "clean")
            self.condition_combo.addItem("noised inpainting (the paper's)", "noised")
            self.condition_combo.setEnabled(True)
            self.condition_combo.setToolTip("this model was trained to take the prior slices clean; both work")
        else:
            self.condition_combo.addItem("noised inpainting (the only mode of this model)", "noised")
            self.condition_combo.setEnabled(False)
            self.condition_combo.setToolTip("this model was not trained on clean prior slices")

    def model_size(self) -> int | None:
        cfg = self.model_meta.get("config", {})
        size = cfg.get("image_size") if isinstance(cfg, dict) else None
        return int(size) if size else None

    # -- seed -----------------------------------------------------------------------------------------------
    def _volume_changed(self, volume: Volume) -> None:
        if self._own_volume_change:
            return
        self.user_volume = volume
        self.user_volume_label = self.mw.volume_label
        if self.running and self.streaming_to_viewer:
            self.streaming_to_viewer = False
            self.view_label.setText("Another volume was opened in the Viewer: the run goes on here; "
                                    "'Show in Viewer' brings the generated volume back there.")
        self._update_seed_info()

    def seed_from_volume(self) -> bool:
        return self.seed_volume_radio.isChecked()

    def _update_seed_info(self) -> None:
        from ctstudio.pipelines.generate import grid_note

        vol = self.user_volume
        from_volume = self.seed_from_volume()
        self.seed_slice.setEnabled(from_volume and vol is not None)
        self.crosshair_button.setEnabled(from_volume and vol is not None)
        if vol is not None:
            z = vol.shape[0]
            if self.seed_slice.maximum() != z - 1:
                keep = self.seed_slice.value()
                self.seed_slice.setRange(0, z - 1)
                self.seed_slice.setValue(min(keep, z - 1) if keep else min(20, z - 1))
        if not from_volume:
            self.seed_info.setText("The run starts from air, like the top of a scan.")
            note = None
        elif vol is None:
            self.seed_info.setText("No volume open: open one (File > Open), or start from air.")
            note = None
        else:
            z, h, w = vol.shape
            self.seed_info.setText(f"{self.user_volume_label or 'volume'}: {z} slices of {w}x{h}; new slices "
                                   f"continue below slice {self.seed_slice.value()} (towards the feet).")
            size = self.model_size()
            note = grid_note(vol, size) if size else None
        if note:
            self.grid_note.setText(f"Note: {note}. The viewer shows the seed slices resampled to the model's "
                                   "grid with the generated ones.")
        else:
            self.grid_note.setText("")
        self._preview_seed()

    def _preview_seed(self) -> None:
        """Before a run, the tab's views show the seed volume (nothing for an all-air start), so the user sees
        what the run continues; a run or a result replaces it."""
        if self.running or self.grow is not None:
            return
        shown = self.user_volume if self.seed_from_volume() else None
        if shown is not getattr(self, "_previewed", None):
            self._previewed = shown
            self.view.set_volume(shown)

    def use_crosshair_slice(self) -> None:
        """Seed slice = the slice of the seed volume under the Viewer's crosshair."""
        viewer = self.mw.tab("Viewer")
        tri = getattr(viewer, "triplanar", None)
        if tri is None or tri.display is None or self.user_volume is None:
            return
        if tri.volume is not self.user_volume:
            self.mw.status("the Viewer shows another volume than the seed; its crosshair slice is not used", 8000)
            return
        k = tri.display.original_index(tri.state.cursor)[0]
        self.seed_slice.setValue(int(k))

    # -- running --------------------------------------------------------------------------------------------
    def build_request(self):
        from ctstudio.pipelines.generate import GenerateRequest

        entry = self.models.selected_entry()
        if entry is None or entry.error:
            raise InputError("choose a usable score model in the list first")
        seed = self.user_volume if self.seed_from_volume() else None
        if self.seed_from_volume() and seed is None:
            raise InputError("no volume is open to continue", hint="open one (File > Open) or choose all air")
        icnet = self.icnet_check.isChecked() and self.icnet_combo.count() > 0
        condition = self.condition_combo.currentData() if self.condition_combo.isEnabled() else None
        return GenerateRequest(n_slices=self.n_slices.value(), model=str(entry.path), seed_volume=seed,
                               seed_slice=self.seed_slice.value() if seed is not None else None,
                               sampler=self.sampler(), steps=self.steps.value(), condition=condition,
                               icnet=bool(icnet), icnet_model=self.icnet_combo.currentData() if icnet else None,
                               seed=self.random_seed.value(), device=self.models.device())

    def start(self):
        """Start a new run with the choices on screen; returns the worker (None when refused)."""
        if self.running:
            return None
        try:
            req = self.build_request()
        except CTStudioError as exc:
            self.mw.show_error("Cannot generate", str(exc))
            return None
        meta = self.model_meta
        size = self.model_size() or 64
        spacing = tuple(meta.get("card", {}).get("spacing_xyz_mm") or (1.0, 1.0, 1.0))
        self.grow = GrowingVolume(req.seed_volume, req.seed_slice, size, air_spacing=spacing,
                                  model=str(meta.get("name", "")))
        self.request = req
        self.runs = []
        self.run_results = []
        self.provenance = None
        self.last_state = None
        self.provenance_view.setPlainText("")
        self.streaming_to_viewer = True
        self.view.set_volume(None)
        first = self.grow.volume()
        if first is not None:
            self.view.set_volume(first)
            self._show_in_main(first, new=True)
        return self._run(req)

    def continue_run(self):
        """Generate ``Slices`` more from where the last run stopped; returns the worker."""
        if self.running or self.last_state is None or self.request is None:
            return None
        req = dataclasses.replace(self.request, n_slices=self.n_slices.value(), resume=self.last_state)
        return self._run(req)

    def _run(self, req):
        from ctstudio.app.workers import start_worker

        self.part_request = req
        self._part = {"sampler": req.sampler, "steps": req.steps, "condition": req.condition, "seed": req.seed,
                      "icnet_model": None, "seed_slice": req.seed_slice, "slices": 0, "seconds": 0.0,
                      "network_calls": 0, "stopped": False}
        self.running = True
        self.progress.setRange(0, req.n_slices)
        self.progress.setValue(0)
        self.progress_label.setText("loading the model ...")
        self._set_result_buttons()
        self.worker = start_worker(generate_job, req, self.threads.value(), kind="generate", on_progress=self._event,
                                   on_result=self._done, on_error=self._error, on_finished=self._finished)
        self.worker.aborted.connect(self._aborted)
        return self.worker

    def cancel(self) -> None:
        """Stop the run within one sampler step; every finished slice stays."""
        if self.worker is not None and self.running:
            self.progress_label.setText(self.progress_label.text() + "  - stopping ...")
            self.worker.quit()

    def _event(self, ev: dict) -> None:
        stage = ev.get("stage")
        if stage == "start":
            self._part["icnet_model"] = ev.get("icnet")
            self._part["condition"] = self.part_request.condition or ("clean" if self._conditional() else "noised")
            self.model_meta.setdefault("k", ev.get("k"))
            notes = ev.get("notes") or []
            self.progress_label.setText(f"{ev.get('model')} on {ev.get('device')}"
                                        + ("".join(f"\nnote: {n}" for n in notes)))
        elif stage == "slice":
            self._slice(ev)

    def _slice(self, ev: dict) -> None:
        grow = self.grow
        before = grow.volume()
        row = grow.add(ev["slice_hu"], ev["target_index"], ev["index"])
        self.last_state = ev["state"]
        part = self._part
        part["slices"] += 1
        part["seconds"] += float(ev["slice_seconds"])
        part["network_calls"] += int(ev["nfe"])
        vol = grow.volume()
        grown = before is None or before.shape != vol.shape
        if before is None:
            self.view.set_volume(vol)
        else:
            self.view.update_volume(vol, None if grown else [row])
        if self.streaming_to_viewer:
            self._show_in_main(vol, new=before is None, changed=None if grown else [row])
        self._mark_range()
        if self.follow_check.isChecked():
            self._follow(self.view, row)
            viewer = self.mw.tab("Viewer")
            if self.streaming_to_viewer and getattr(viewer, "triplanar", None) is not None:
                self._follow(viewer.triplanar, row)
        done, total = ev["done"], ev["total"]
        self.progress.setValue(done)
        per = part["seconds"] / max(1, part["slices"])
        eta = ev.get("eta")
        self.progress_label.setText(
            f"slice {done}/{total} of this part ({grow.n_generated} generated)  -  {per:.2f} s/slice, "
            f"{ev['nfe']} network calls/slice" + (f", ETA {eta:.0f} s" if eta is not None else ""))
        self.slice_shown.emit(row)

    def _follow(self, tri, row: int) -> None:
        disp = tri.display
        if disp is None:
            return
        kji = list(disp.original_index(tri.state.cursor))
        kji[0] = row
        tri.state.set_cursor(disp.canonical_index(kji))

    def _mark_range(self) -> None:
        rng = self.grow.generated_range if self.grow is not None else None
        label = f"GENERATED ({self.grow.model})" if rng else ""
        views = list(self.view.views.values())
        viewer = self.mw.tab("Viewer")
        if self.streaming_to_viewer and viewer is not None and hasattr(viewer, "views"):
            views += list(viewer.views.values())
        for v in views:
            if hasattr(v, "set_marked_range"):
                v.set_marked_range(rng, label, MARK_COLOUR)

    def _show_in_main(self, vol: Volume, new: bool, changed=None) -> None:
        self._own_volume_change = True
        try:
            if new:
                label = (f"{self.user_volume_label or 'seed'} + generated" if self.grow.seed is not None
                         else "generated from air")
                self.mw.set_volume(vol, label)
            else:
                self.mw.update_volume(vol, changed)
        finally:
            self._own_volume_change = False

    def show_in_viewer(self) -> None:
        """Show the generated volume in the Viewer tab again (after another volume was opened)."""
        vol = self.grow.volume() if self.grow is not None else None
        if vol is None:
            return
        self.streaming_to_viewer = True
        self._show_in_main(vol, new=True)
        self._mark_range()
        self.view_label.setText("The generated volume is shown in the Viewer tab too.")

    def _end_part(self, how: str) -> None:
        if self._part is not None and self._part["slices"]:
            self._part["stopped"] = how != "done"
            if self._part["steps"] is None:
                self._part["steps"] = self.default_steps.get(self._part["sampler"])
            self.runs.append(self._part)
            try:
                self.provenance = run_provenance(self.model_meta, self.runs, self.request.seed_volume)
                self.provenance_view.setPlainText(provenance_text(self.provenance))
            except (KeyError, TypeError) as exc:  # a model JSON without the fields a provenance needs
                self.provenance_view.setPlainText(f"provenance incomplete: {exc}")
        self._part = None

    def _done(self, volume: Volume) -> None:
        self.run_results.append(volume)
        self._end_part("done")
        self.progress_label.setText(self.progress_label.text() + "  - done")
        self.run_finished.emit("done")

    def _aborted(self) -> None:
        if self._part is None:
            return
        n = self._part["slices"]
        self._end_part("cancelled")
        self.progress_label.setText(f"stopped: {n} slice(s) of this part kept "
                                    f"({self.grow.n_generated if self.grow else 0} generated); Continue carries on")
        self.run_finished.emit("cancelled")

    def _error(self, exc: BaseException) -> None:
        n = self._part["slices"] if self._part else 0
        self._end_part("error")
        self.mw.report_exception("Generation failed", exc)
        self.progress_label.setText(f"error after {n} slice(s) (kept): {str(exc).splitlines()[0]}")
        self.run_finished.emit("error")

    def _finished(self) -> None:
        self.running = False
        self._set_result_buttons()

    def _set_result_buttons(self) -> None:
        has = self.grow is not None and self.grow.n_generated > 0
        self.generate_button.setEnabled(not self.running)
        self.cancel_button.setEnabled(self.running)
        self.continue_button.setEnabled(not self.running and self.last_state is not None)
        for b in (self.save_nifti_button, self.save_dicom_button, self.pool_button, self.show_button):
            b.setEnabled(has and not self.running)
        self.compare_button.setEnabled(has and not self.running and self.grow.real_continuation() is not None)

    # -- the result -----------------------------------------------------------------------------------------
    def generated_volume(self) -> Volume | None:
        """Every slice generated so far, with the run's provenance (what Save and the study pool write)."""
        if self.grow is None or self.provenance is None:
            return None
        return self.grow.generated_volume(self.provenance)

    def confirm_overwrite(self, path: Path) -> bool:
        """Ask before replacing an existing file or folder (tests replace this)."""
        answer = QMessageBox.question(self, "Replace?", f"{path} exists.\nReplace it with the generated volume?")
        return answer == QMessageBox.StandardButton.Yes

    def save_dialog(self, fmt: str) -> None:
        start = str(Path(str(self.mw.settings.value("last_dir", str(Path.home())))) / "generated")
        opts = QFileDialog.Option.DontConfirmOverwrite
        if fmt == "nifti":
            path, _ = QFileDialog.getSaveFileName(self, "Save generated volume as NIfTI", start + ".nii.gz",
                                                  "NIfTI (*.nii.gz *.nii)", options=opts)
            if path and not path.lower().endswith((".nii", ".nii.gz")):
                path += ".nii.gz"
        else:
            parent = QFileDialog.getExistingDirectory(self, "Save as DICOM series: choose the parent folder",
                                                      str(Path(start).parent))
            if not parent:
                return
            name, ok = QInputDialog.getText(self, "Save as DICOM series", "New folder for the series:",
                                            text="generated_dicom")
            path = str(Path(parent) / name) if ok and name else ""
        if path:
            self.save(path, fmt)

    def save(self, path, fmt: str = "nifti", overwrite: bool | None = None):
        """Write the generated slices (synthetic) off the UI thread; returns the worker, or None when refused."""
        from ctstudio.app.workers import save_volume_job, start_worker
        from ctstudio.pipelines.outputs import check_output

        vol = self.generated_volume()
        if vol is None:
            return None
        path = Path(path)
        seed = self.request.seed_volume if self.request is not None else None
        inputs = list(seed.provenance.source_files) if seed is not None else []
        if self.mw.volume_path:
            inputs.append(self.mw.volume_path)
        try:
            check_output(path, inputs=inputs, overwrite=True)  # never onto an input, even when confirmed
            if path.exists() and overwrite is None:
                overwrite = self.confirm_overwrite(path)
            check_output(path, inputs=inputs, overwrite=bool(overwrite))
        except CTStudioError as exc:
            self.mw.show_error("Not saved", str(exc))
            return None
        opts = {"format": fmt, "overwrite": bool(overwrite)}
        if fmt == "dicom":
            opts["synthetic"] = True

        def done(out) -> None:
            if fmt == "nifti":  # NIfTI cannot hold the provenance: it goes beside the file
                write_provenance_sidecar(vol, out)
            self.mw.status(f"saved the generated volume to {out}", 10000)
            self.progress_label.setText(f"saved {out}")

        return start_worker(save_volume_job, vol, str(path), **opts, on_result=done,
                            on_error=lambda exc: self.mw.report_exception("Could not save", exc, path))

    def compare_with_real(self) -> bool:
        """The Viewer's compare mode: the real slices where the generated ones are | the generated | difference."""
        pair = self.grow.real_continuation() if self.grow is not None else None
        viewer = self.mw.tab("Viewer")
        if pair is None or viewer is None:
            self.mw.show_error("Compare", "The seed volume has no real slices where the generated ones are.")
            return False
        real, gen = pair
        ok = viewer.compare_with(gen, name=f"generated ({self.grow.model})", resample=False, a=real,
                                 a_name=f"{self.user_volume_label or 'seed'} (real continuation)")
        if ok:
            self.mw.tabs.setCurrentWidget(viewer)
        return ok

    def add_to_pool_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Study folder (the one holding the spec and cases/)",
                                                  str(self.mw.settings.value("generate/study_dir", str(Path.home()))))
        if not folder:
            return
        self.mw.settings.setValue("generate/study_dir", folder)
        self.add_to_pool(folder)

    def add_to_pool(self, folder, name: str | None = None) -> Path | None:
        vol = self.generated_volume()
        if vol is None:
            return None
        try:
            out = add_to_study_pool(vol, folder, name)
        except CTStudioError as exc:
            self.mw.show_error("Not added to the study pool", str(exc))
            return None
        self.mw.status(f"added {out.name} to the synthetic pool of {folder} (provenance beside it)", 10000)
        self.progress_label.setText(f"added to the study pool: {out}")
        return out

    # -- 3D ------------------------------------------------------------------------------------------------
    def _toggle_3d(self, on: bool) -> None:
        reason = self.view.enable_3d(on, preset=str(self.mw.settings.value("viewer/preset3d", "bone")))
        if reason:
            self.mw.status(f"3D view: {reason}", 5000)
            self.check3d.blockSignals(True)
            self.check3d.setChecked(False)
            self.check3d.blockSignals(False)
