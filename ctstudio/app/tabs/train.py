"""The Train tab: scan a data folder, start ``ctstudio train`` as a child process, watch it, pause, stop, continue.

Data first: the chosen folder is scanned off the UI thread (:func:`ctstudio.training.scan.scan_data`) and
summarised (volumes, shapes, spacing, HU range, kernels, problems) before a run can start. The layouts each model
kind expects are in ``docs/training-data.md``.

A run is a folder under the runs folder (:mod:`ctstudio.pipelines.runs`): ``run.json`` and ``config.json``
(``{"base": preset, ...edited fields}``) written by this tab, then ``ctstudio train KIND --config config.json
--out RUN --events jsonl`` started as a *detached* QProcess (``sys.executable -m ctstudio.cli``, so a venv
works): a crash or out-of-memory in training cannot take the window down, and the run can outlive the window.
Its pid goes to ``RUN/train.pid``, its stderr to ``RUN/train.log``. The tab reads the run's own
``events.jsonl`` (the trainer appends every event there) on a timer, so a run started by this window, by an
earlier window or from a terminal is watched the same way, its curves redrawn from the first event.

Pause / Resume are SIGSTOP / SIGCONT to the process (nothing in the child to go wrong; the run's wall time
and steps/s include the pause). Stop is SIGTERM: the trainer finishes its step, writes a checkpoint and exits
(143). Continue starts the same command with ``--resume`` (a stopped, killed or failed run with a checkpoint):
the curve continues from the checkpoint's step, dropping points logged after it.

Closing the window with a run going asks whether to stop it or leave it running; reopening the window
re-attaches to it (``train/current_run`` in the settings and the pid file).
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

from PySide6.QtCore import QProcess, Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QListWidget, QListWidgetItem, QMessageBox, QPlainTextEdit, QPushButton, QSpinBox,
                               QSplitter,
                               QVBoxLayout, QWidget)

from ctstudio.app.widgets.loss_plot import LossPlot
from ctstudio.app.workers import start_worker
from ctstudio.pipelines import runs

TITLE = "Train"
ORDER = 70

#: model kind -> (label, config module, config class)
KINDS = {
    "score": ("ASCII score model", "ctstudio.training.recipe_score", "ScoreTrainConfig"),
    "icnet": ("IC-Net (intensity calibration)", "ctstudio.training.recipe_icnet", "ICNetTrainConfig"),
    "ggcl": ("GGCL (kernel conversion)", "ctstudio.training.recipe_ggcl", "GGCLConfig"),
    "cgan": ("3D cGAN (denoise / depixelate)", "ctstudio.training.recipe_cgan", "CGANConfig"),
}
PRESETS = ("tiny", "demo", "paper")
#: the config fields the tab lets a user edit, where the kind's config has them
KEY_FIELDS = ("steps", "batch_size", "lr", "image_size", "k", "crop", "block", "checkpoint_every", "preview_every")
#: fields where 0 means "off" (no crop, no preview, no periodic checkpoint)
ZERO_OK = ("crop", "preview_every", "checkpoint_every")
#: how often the run's files are read (ms)
POLL_MS = 300


def presets_job(*, cancel=None):
    """Every kind's presets as dicts, and the devices present (imports torch: run off the UI thread)."""
    import importlib

    from ctstudio.jobs import Progress, check_cancel
    from ctstudio.pipelines.devices import available_devices

    yield Progress("presets", total=len(KINDS), unit="kind").event("start")
    out = {}
    for kind, (_, module, cls_name) in KINDS.items():
        check_cancel(cancel, "presets not read")
        cls = getattr(importlib.import_module(module), cls_name)
        out[kind] = {p: _plain(getattr(cls, p)().to_dict()) for p in PRESETS if hasattr(cls, p)}
    return {"presets": out, "devices": available_devices()}


def _plain(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))


def _fmt_seconds(s) -> str:
    if s is None:
        return "?"
    s = int(round(float(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Tab(QWidget):
    """The Train tab (see module doc)."""

    #: the data scan finished: the DataSummary
    scanned = Signal(object)
    #: an event of the watched run was read (the jobs schema)
    event_read = Signal(dict)
    #: the watched run's process ended: its state (finished, stopped, failed, killed)
    run_ended = Signal(str)
    #: presets and devices are known
    presets_ready = Signal()

    def __init__(self, main_window=None) -> None:
        super().__init__()
        self.main_window = main_window
        self.settings = getattr(main_window, "settings", None)
        self.presets: dict[str, dict[str, dict]] = {}
        self.summary = None
        self.run: Path | None = None
        self.tail: runs.EventTail | None = None
        self.log_offset = 0
        self.proc_state = "gone"
        self.last_event: dict | None = None
        #: what to do with a running training when the window closes: ask | stop | leave
        self.close_policy = "ask"
        #: CPU threads for torch in the child (None: torch's default); tests use 1 for bit-identical losses
        self.threads: int | None = None
        self._started = False
        self._presets_started = False
        self._scan_worker = None
        self._build()
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)

    # -- layout -----------------------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QHBoxLayout(self)
        split = QSplitter(Qt.Orientation.Horizontal)
        outer.addWidget(split)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)

        data = QGroupBox("1. Data")
        dl = QVBoxLayout(data)
        row = QHBoxLayout()
        self.data_edit = QLineEdit(self._setting("train/data", ""))
        self.data_edit.setPlaceholderText("a folder of CT volumes (see docs/training-data.md)")
        row.addWidget(self.data_edit, 1)
        b = QPushButton("Browse...")
        b.clicked.connect(self._browse_data)
        row.addWidget(b)
        self.scan_button = QPushButton("Scan")
        self.scan_button.clicked.connect(self.scan)
        row.addWidget(self.scan_button)
        dl.addLayout(row)
        self.scan_label = QLabel("Pick a folder and scan it: the run starts from what the scan found.")
        self.scan_label.setWordWrap(True)
        dl.addWidget(self.scan_label)
        self.scan_text = QPlainTextEdit()
        self.scan_text.setReadOnly(True)
        self.scan_text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.scan_text.setMaximumHeight(150)
        dl.addWidget(self.scan_text)
        lv.addWidget(data)

        model = QGroupBox("2. Model and config")
        form = QFormLayout(model)
        self.kind_combo = QComboBox()
        for k, (label, _, _) in KINDS.items():
            self.kind_combo.addItem(label, k)
        i = self.kind_combo.findData(self._setting("train/kind", "score"))
        self.kind_combo.setCurrentIndex(max(i, 0))
        self.kind_combo.currentIndexChanged.connect(self._kind_changed)
        form.addRow("model kind", self.kind_combo)
        prow = QHBoxLayout()
        self.preset_combo = QComboBox()
        self.preset_combo.addItems([*PRESETS, "file"])
        self.preset_combo.currentTextChanged.connect(lambda _: self._fill_fields())
        prow.addWidget(self.preset_combo)
        self.config_file_edit = QLineEdit()
        self.config_file_edit.setPlaceholderText('config JSON naming its "base" preset')
        self.config_file_edit.editingFinished.connect(self._fill_fields)
        prow.addWidget(self.config_file_edit, 1)
        form.addRow("preset", prow)
        self.field_edits: dict[str, QLineEdit] = {}
        self.field_labels: dict[str, QLabel] = {}
        for name in KEY_FIELDS:
            e = QLineEdit()
            lab = QLabel(name.replace("_", " "))
            form.addRow(lab, e)
            self.field_edits[name] = e
            self.field_labels[name] = lab
        self.device_combo = QComboBox()
        self.device_combo.addItem("auto")
        form.addRow("device", self.device_combo)
        self.processes_spin = QSpinBox()
        self.processes_spin.setRange(1, 64)
        self.processes_spin.setValue(1)
        self.processes_spin.setToolTip(
            "processes training together (torchrun + DistributedDataParallel: gloo on the CPU, nccl with one GPU "
            "each on CUDA); batch size is per process, so the global batch is processes x batch size")
        form.addRow("processes", self.processes_spin)
        lv.addWidget(model)

        run = QGroupBox("3. Run")
        rl = QVBoxLayout(run)
        rrow = QHBoxLayout()
        rrow.addWidget(QLabel("runs folder"))
        self.root_edit = QLineEdit(self._setting("train/root", str(Path.home() / "ctstudio-runs")))
        self.root_edit.editingFinished.connect(self.refresh_runs)
        rrow.addWidget(self.root_edit, 1)
        b = QPushButton("...")
        b.clicked.connect(self._browse_root)
        rrow.addWidget(b)
        rl.addLayout(rrow)
        nrow = QHBoxLayout()
        nrow.addWidget(QLabel("new run name"))
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("default: KIND-date-time")
        nrow.addWidget(self.name_edit, 1)
        rl.addLayout(nrow)
        brow = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("stop after the current step, with a checkpoint written")
        self.stop_button.clicked.connect(self.stop)
        self.continue_button = QPushButton("Continue")
        self.continue_button.setToolTip("resume the selected run from its last checkpoint")
        self.continue_button.clicked.connect(self.continue_run)
        self.register_button = QPushButton("Register model")
        self.register_button.setToolTip("copy the watched run's finished model into your models folder: the "
                                        "Generate, Convert and Calibrate tabs list it at once")
        self.register_button.clicked.connect(self.register_model)
        for w in (self.start_button, self.pause_button, self.stop_button, self.continue_button,
                  self.register_button):
            brow.addWidget(w)
        rl.addLayout(brow)
        self.run_list = QListWidget()
        self.run_list.itemClicked.connect(lambda item: self.attach(Path(item.data(Qt.ItemDataRole.UserRole))))
        rl.addWidget(self.run_list, 1)
        b = QPushButton("Refresh list")
        b.clicked.connect(self.refresh_runs)
        rl.addWidget(b)
        lv.addWidget(run, 1)
        split.addWidget(left)

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        self.run_label = QLabel("no run selected")
        self.run_label.setWordWrap(True)
        f = self.run_label.font()
        f.setBold(True)
        self.run_label.setFont(f)
        rv.addWidget(self.run_label)
        self.stats_label = QLabel("")
        rv.addWidget(self.stats_label)
        vsplit = QSplitter(Qt.Orientation.Vertical)
        self.loss_plot = LossPlot()
        vsplit.addWidget(self.loss_plot)
        bottom = QWidget()
        bl = QHBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        pv = QVBoxLayout()
        self.preview_caption = QLabel("preview: none yet")
        pv.addWidget(self.preview_caption)
        self.preview_label = QLabel()
        self.preview_label.setMinimumSize(240, 120)
        self.preview_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview_label.setStyleSheet("background: black;")
        pv.addWidget(self.preview_label, 1)
        bl.addLayout(pv, 1)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        bl.addWidget(self.log_view, 1)
        vsplit.addWidget(bottom)
        vsplit.setSizes([500, 300])
        rv.addWidget(vsplit, 1)
        split.addWidget(right)
        split.setSizes([430, 800])
        self._kind_changed()
        self._update_buttons()

    # -- tab hooks --------------------------------------------------------------------------------------------
    def on_activated(self) -> None:
        self._ensure_started()
        self._ensure_presets()

    def restore(self) -> None:
        self._ensure_started()

    def _ensure_presets(self) -> None:
        """First time the tab is shown: read presets and devices off the UI thread. Not at start-up: reading them
        imports torch, which the viewer and a reader session never need (issue 12)."""
        if self._presets_started:
            return
        self._presets_started = True
        start_worker(presets_job, kind="train-presets", on_result=self._presets_read,
                     on_error=lambda e: self._error("Train: presets", str(e)))

    def _ensure_started(self) -> None:
        """After the window is first shown: list runs and re-attach to a run still going (reads files only)."""
        if self._started:
            return
        self._started = True
        self.refresh_runs()
        current = self._setting("train/current_run", "")
        if current and Path(current).is_dir():
            self.attach(Path(current))

    def shutdown(self) -> None:
        """The window closes: ask whether to stop a running training or leave it running."""
        self.timer.stop()
        if self._scan_worker is not None:
            self._scan_worker.quit()
        if self.run is None or runs.process_state(self.run) == "gone":
            return
        policy = self.close_policy
        if policy == "ask":
            box = QMessageBox(QMessageBox.Icon.Question, "Training is running",
                              f"The training run {self.run.name} is still going.\n\n"
                              "Stop it (a checkpoint is written; Continue resumes it later), or leave it running "
                              "(reopening the window re-attaches to it)?", parent=self)
            stop = box.addButton("Stop training", QMessageBox.ButtonRole.DestructiveRole)
            box.addButton("Leave it running", QMessageBox.ButtonRole.AcceptRole)
            box.exec()
            policy = "stop" if box.clickedButton() is stop else "leave"
        if policy == "stop":
            runs.send(self.run, "stop")

    # -- settings and small helpers ---------------------------------------------------------------------------
    def _setting(self, key: str, default: str) -> str:
        if self.settings is None:
            return default
        v = self.settings.value(key, default)
        return str(v) if v is not None else default

    def _set(self, key: str, value: str) -> None:
        if self.settings is not None:
            self.settings.setValue(key, value)

    def _error(self, title: str, message: str) -> None:
        if self.main_window is not None and hasattr(self.main_window, "show_error"):
            self.main_window.show_error(title, message)
        else:
            self.log_view.appendPlainText(f"error: {message}")

    def _status(self, message: str) -> None:
        if self.main_window is not None and hasattr(self.main_window, "status"):
            self.main_window.status(message, 5000)

    @property
    def kind(self) -> str:
        return str(self.kind_combo.currentData())

    @property
    def root(self) -> Path:
        return Path(self.root_edit.text().strip() or Path.home() / "ctstudio-runs").expanduser()

    def _browse_data(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Training data folder", self.data_edit.text())
        if d:
            self.data_edit.setText(d)
            self.scan()

    def _browse_root(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Runs folder", self.root_edit.text())
        if d:
            self.root_edit.setText(d)
            self.refresh_runs()

    # -- config -----------------------------------------------------------------------------------------------
    def _presets_read(self, result: dict) -> None:
        self.presets = result["presets"]
        current = self.device_combo.currentText()
        self.device_combo.clear()
        self.device_combo.addItems(["auto", *result["devices"]])
        i = self.device_combo.findText(current)
        self.device_combo.setCurrentIndex(max(i, 0))
        self._fill_fields()
        self.presets_ready.emit()

    def _kind_changed(self) -> None:
        self._set("train/kind", self.kind)
        self.summary = None
        self._fill_fields()
        self._update_buttons()

    def base_config(self) -> tuple[str, dict]:
        """(base preset, its fields with a config file's overrides) for the chosen kind and preset."""
        preset = self.preset_combo.currentText()
        kind_presets = self.presets.get(self.kind, {})
        if preset != "file":
            return preset, dict(kind_presets.get(preset, {}))
        path = Path(self.config_file_edit.text().strip())
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError):
            return "", {}
        base = str(d.pop("base", ""))
        fields = dict(kind_presets.get(base, {}))
        fields.update(d)
        return base, fields

    def _fill_fields(self) -> None:
        _, fields = self.base_config()
        for name, e in self.field_edits.items():
            present = name in fields
            e.setVisible(present)
            self.field_labels[name].setVisible(present)
            e.setText(str(fields[name]) if present else "")
        self.config_file_edit.setVisible(self.preset_combo.currentText() == "file")

    def config_dict(self) -> dict:
        """The config file of a new run: ``{"base": preset, ...}`` with the file's fields and the edited ones."""
        base, fields = self.base_config()
        if not base:
            raise ValueError("choose a preset, or a config file that names its base preset")
        base_fields = self.presets[self.kind][base]
        out: dict = {"base": base}
        for k, v in fields.items():
            if base_fields.get(k) != v:
                out[k] = v
        for name, e in self.field_edits.items():
            if name not in fields:
                continue
            text = e.text().strip()
            ref = base_fields.get(name, fields[name])
            try:
                value = type(ref)(float(text)) if isinstance(ref, int) and not isinstance(ref, bool) else float(text)
            except ValueError:
                raise ValueError(f"{name} must be a number, not {text!r}") from None
            if isinstance(ref, int) and value != float(text):
                raise ValueError(f"{name} must be a whole number, not {text!r}")
            if value < 0 or (value == 0 and name not in ZERO_OK):
                raise ValueError(f"{name} must be {'zero or more' if name in ZERO_OK else 'positive'}, not {text!r}")
            if value != ref:
                out[name] = value
        return out

    # -- data scan --------------------------------------------------------------------------------------------
    def scan(self) -> None:
        from ctstudio.training.scan import scan_data

        folder = self.data_edit.text().strip()
        if not folder:
            self.scan_label.setText("Pick the folder that holds the training CT first.")
            return
        self._set("train/data", folder)
        preset = self.preset_combo.currentText()
        config = self.config_file_edit.text().strip() if preset == "file" else preset
        kind = self.kind
        block = (self.presets.get(kind, {}).get(preset if preset != "file" else "tiny", {}) or {}).get("block")
        self.scan_label.setText(f"scanning {folder} ...")
        self.scan_text.clear()
        self.summary = None
        self._update_buttons()
        self._scan_worker = start_worker(scan_data, folder, kind, config or "tiny", block=block, kind="train-scan",
                                         on_result=self._scanned, on_progress=self._scan_progress,
                                         on_error=self._scan_failed)

    def _scan_progress(self, ev: dict) -> None:
        if ev.get("stage") == "volume":
            self.scan_label.setText(f"scanning: {ev['done']} of {ev['total']} volumes read ...")

    def _scan_failed(self, exc: BaseException) -> None:
        self.scan_label.setText(f"the scan failed: {exc}")
        self.summary = None
        self._update_buttons()

    def _scanned(self, summary) -> None:
        self.summary = summary
        lines = summary.lines()
        n = len(summary.problems)
        verdict = (f"{len(summary.used)} volume(s) to train on" if summary.ok else "nothing to train on") + \
            (f"; {n} problem(s) found, read them below" if n else "; no problems found")
        self.scan_label.setText(verdict)
        self.scan_label.setStyleSheet("" if summary.ok and not n else "color: #b05000;" if summary.ok
                                      else "color: #c00000;")
        self.scan_text.setPlainText("\n".join(lines))
        self._update_buttons()
        self.scanned.emit(summary)

    # -- starting and controlling a run -----------------------------------------------------------------------
    def start(self) -> Path | None:
        """Start a new run in a new folder under the runs folder (after a scan with something to train on)."""
        if self.summary is None or not self.summary.ok:
            self._error("Train", "Scan the data folder first: the run starts from volumes the scan found.")
            return None
        try:
            config = self.config_dict()
        except ValueError as exc:
            self._error("Train: config", str(exc))
            return None
        root = self.root
        name = self.name_edit.text().strip() or runs.new_run_name(root, self.kind)
        run = root / name
        if run.exists() and any(run.iterdir()):
            self._error("Train", f"{run} already exists and is not empty: choose another run name "
                                 "(select the run in the list and press Continue to resume it).")
            return None
        run.mkdir(parents=True, exist_ok=True)
        self._set("train/root", str(root))
        spec = {"kind": self.kind, "data": str(Path(self.summary.folder).resolve()), "device": self.device_combo.currentText(),
                "preset": config["base"], "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                "threads": self.threads, "name": run.name, "processes": int(self.processes_spin.value()),
                "data_summary": {"volumes": len(self.summary.used), "problems": self.summary.problems}}
        runs.write_json(run / runs.CONFIG_FILE, config)
        runs.write_json(run / runs.RUN_FILE, spec)
        self.name_edit.clear()
        return self._launch(run, spec, resume=False)

    def continue_run(self) -> Path | None:
        """Resume the selected (or watched) run from its last checkpoint."""
        item = self.run_list.currentItem()
        run = Path(item.data(Qt.ItemDataRole.UserRole)) if item is not None else self.run
        if run is None:
            return None
        status = runs.run_status(run)
        spec = runs.read_json(run / runs.RUN_FILE)
        if not spec or not (run / runs.CONFIG_FILE).exists():
            self._error("Train", f"{run} was not started from this tab (no run.json / config.json): continue it "
                                 "with ctstudio train ... --resume")
            return None
        if not status.resumable:
            self._error("Train", f"{run.name} is {status.state}; only a stopped, killed or failed run with a "
                                 "checkpoint can continue")
            return None
        return self._launch(run, spec, resume=True)

    def _launch(self, run: Path, spec: dict, resume: bool) -> Path | None:
        argv = runs.train_argv(sys.executable, run, spec, resume)
        # a detached process outlives the window; /bin/sh sends its output to the run folder and execs the
        # trainer in place (same pid: the pid file names the trainer itself)
        shell = 'log="$1"; shift; exec "$@" >/dev/null 2>>"$log"'
        ok, pid = QProcess.startDetached("/bin/sh", ["-c", shell, "sh", str(run / runs.LOG_FILE), *argv],
                                         str(run))
        if not ok or not pid:
            self._error("Train", f"could not start {' '.join(argv)}")
            return None
        runs.write_json(run / runs.PID_FILE, {"pid": int(pid), "started": time.time(), "argv": argv})
        self._status(f"training {run.name} started (pid {pid})")
        self.attach(run)
        self.refresh_runs()
        return run

    def toggle_pause(self) -> None:
        if self.run is None:
            return
        state = runs.process_state(self.run)
        if state == "running":
            runs.send(self.run, "pause")
        elif state == "paused":
            runs.send(self.run, "resume")
        self.poll()

    def stop(self) -> None:
        """SIGTERM: the trainer finishes its step, writes a checkpoint and exits."""
        if self.run is not None and runs.send(self.run, "stop"):
            self.log_view.appendPlainText("stop requested: the run writes a checkpoint after its current step")

    def confirm(self, title: str, text: str) -> bool:
        """Ask a yes/no question (tests replace this)."""
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def register_model(self) -> Path | None:
        """Copy the watched run's final model (weights + card) into the user models folder; an existing model of
        that name is replaced only after a confirmation. The model panels of the other tabs list it at once."""
        from ctstudio.checkpoints import read_meta
        from ctstudio.errors import CTStudioError
        from ctstudio.pipelines import register

        if self.run is None:
            self._error("Register model", "Select a finished run in the list first.")
            return None
        try:
            st, _ = register.source_model(self.run)
            name = read_meta(st)["name"]
            target = register.registered_path(name)
            overwrite = False
            if target.exists() or target.with_suffix(".json").exists():
                if not self.confirm("Register model", f"A model named {name} is in {target.parent} already.\n\n"
                                                      "Replace it with this run's model?"):
                    return None
                overwrite = True
            path = register.register_model(self.run, overwrite=overwrite)
        except CTStudioError as exc:
            self._error("Register model", str(exc))
            return None
        self._refresh_model_panels()
        self.log_view.appendPlainText(f"registered {name}: {path}")
        self._status(f"model {name} registered: the model panels list it")
        return path

    def _refresh_model_panels(self) -> None:
        from ctstudio.app.widgets.models_panel import ModelsPanel

        if self.main_window is not None and hasattr(self.main_window, "findChildren"):
            for panel in self.main_window.findChildren(ModelsPanel):
                panel.refresh()

    def _update_buttons(self) -> None:
        state = self.proc_state
        live = state in ("running", "paused")
        self.start_button.setEnabled(self.summary is not None and self.summary.ok)
        self.pause_button.setEnabled(live)
        self.pause_button.setText("Resume" if state == "paused" else "Pause")
        self.stop_button.setEnabled(live)
        self.register_button.setEnabled(self.run is not None and not live)

    # -- watching a run ---------------------------------------------------------------------------------------
    def attach(self, run: Path) -> None:
        """Show ``run``: its curves from the first event, then live while its process runs."""
        run = Path(run)
        self.run = run
        self._set("train/current_run", str(run))
        self.loss_plot.clear()
        self.log_view.clear()
        self.preview_label.clear()
        self.preview_caption.setText("preview: none yet")
        self.stats_label.setText("")
        self.last_event = None
        self.tail = runs.EventTail(run / "events.jsonl")
        self.log_offset = 0
        self.proc_state = "gone"
        self.poll()
        self.timer.start()

    def poll(self) -> None:
        """Read what the run appended (events, log), update the view, notice the process ending."""
        if self.run is None or self.tail is None:
            return
        events = self.tail.read()
        self._polls = getattr(self, "_polls", 0) + 1
        if events and self._polls % 10 == 0:
            self.refresh_runs()  # the list's step and state of the watched run
        for ev in events:
            self._show_event(ev)
        self._read_log()
        before = self.proc_state
        self.proc_state = runs.process_state(self.run)
        if self.proc_state != "gone":
            label = self.proc_state
        elif self.last_event is None:
            label = "no events yet"
        else:
            label = self._ended_state()
        self.run_label.setText(f"{self.run.name}: {label}")
        self._update_buttons()
        if before != "gone" and self.proc_state == "gone":
            for ev in self.tail.read():  # the last lines written before it exited
                self._show_event(ev)
            self._read_log()
            final = self._ended_state()
            self.run_label.setText(f"{self.run.name}: {final}")
            self.refresh_runs()
            self.run_ended.emit(final.split(" ", 1)[0].rstrip(":"))
        if self.proc_state == "gone" and before == "gone" and events == []:
            self.timer.setInterval(2000)  # an ended run: look now and then (it may be continued from a terminal)
        else:
            self.timer.setInterval(POLL_MS)

    def _ended_state(self) -> str:
        ev = self.last_event
        if ev is None:
            return "killed"
        if ev["stage"] == "error":
            return f"failed: {ev.get('message', '')}"
        if ev["stage"] == "done":
            return "stopped (Continue resumes it)" if ev.get("cancelled") else f"finished: {ev.get('path', '')}"
        return "killed (the process ended without a checkpoint at exit; Continue resumes from the last one)"

    def _show_event(self, ev: dict) -> None:
        from ctstudio.training.events import TextPrinter

        stage = ev["stage"]
        if stage == "start":
            if ev.get("resumed"):
                self.loss_plot.truncate_after(int(ev["done"]))
            self.log_view.appendPlainText(f"start at step {ev['done']} of {ev['total']} on {ev.get('device')}"
                                          f"{' (resumed)' if ev.get('resumed') else ''}")
        else:
            buf = io.StringIO()
            TextPrinter(buf)(ev)
            self.log_view.appendPlainText(buf.getvalue().rstrip())
        if stage in ("start", "step", "done", "error"):
            self.last_event = ev
        if stage == "step":
            losses = ev.get("losses") or {"loss": ev.get("loss")}
            self.loss_plot.add_point(int(ev["done"]), losses)
            lr = ev.get("lr")
            self.stats_label.setText(
                f"step {ev['done']} / {ev['total']}    {ev.get('steps_per_s', 0):.2f} steps/s    "
                f"ETA {_fmt_seconds(ev.get('eta'))}    lr {lr:.3g}    loss {ev.get('loss', float('nan')):.4g}"
                if lr is not None else f"step {ev['done']} / {ev['total']}")
        elif stage == "preview":
            self._show_preview(Path(ev["path"]), int(ev["done"]))
        self.event_read.emit(ev)

    def _show_preview(self, path: Path, step: int) -> None:
        pix = QPixmap(str(path))
        if pix.isNull():
            return
        self._preview_pixmap = pix
        self.preview_label.setPixmap(pix.scaled(self.preview_label.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                                Qt.TransformationMode.FastTransformation))
        what = {"score": "real last slice | generated from the slices above",
                "icnet": "drifted (mu 0.8) | IC-Net calibrated | real",
                "ggcl": "source | converted | real target kernel",
                "cgan": "degraded | restored | clean"}.get(runs.read_json(self.run / runs.RUN_FILE).get("kind", ""), "")
        self.preview_caption.setText(f"preview at step {step}: {what}")

    def resizeEvent(self, ev) -> None:  # noqa: N802
        super().resizeEvent(ev)
        pix = getattr(self, "_preview_pixmap", None)
        if pix is not None:
            self.preview_label.setPixmap(pix.scaled(self.preview_label.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                                    Qt.TransformationMode.FastTransformation))

    def _read_log(self) -> None:
        path = self.run / runs.LOG_FILE
        try:
            with open(path, "rb") as fh:
                fh.seek(self.log_offset)
                data = fh.read()
        except OSError:
            return
        self.log_offset += len(data)
        text = data.decode("utf-8", errors="replace").rstrip()
        if text:
            self.log_view.appendPlainText(text)

    # -- run list ---------------------------------------------------------------------------------------------
    def refresh_runs(self) -> None:
        self._set("train/root", str(self.root))
        self.run_list.clear()
        for st in runs.list_runs(self.root):
            item = QListWidgetItem(st.label())
            item.setData(Qt.ItemDataRole.UserRole, str(st.path))
            if st.message:
                item.setToolTip(st.message)
            self.run_list.addItem(item)
            if self.run is not None and st.path == self.run:
                self.run_list.setCurrentItem(item)

    def run_states(self) -> dict[str, str]:
        """Run folder name -> state, as listed (tests and the status bar)."""
        return {Path(st.path).name: st.state for st in runs.list_runs(self.root)}
