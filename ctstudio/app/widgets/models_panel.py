"""ModelsPanel: the models list shared by every model tab (Generate, Convert, Calibrate, Train).

``ModelsPanel(main_window, kinds=("score",))`` lists the bundled models (``resources/models``) and the
user's (``$CTSTUDIO_MODELS``, else ``~/.local/share/ctstudio/models``) of those kinds, shows the selected
model's card (kind, training data and licence, resolution, HU range, steps, measured figures, a visible
DEMO MODEL mark where the card says so), offers the devices present (auto / each CUDA device / MPS / CPU)
and loads the chosen model **off the UI thread** through :func:`ctstudio.pipelines.models.load_model`
(whose cache makes a second load of the same file on the same device free). ``model_loaded(LoadedModel)``
is emitted when a model is ready; :meth:`ModelsPanel.device` is the device the user chose.

"Add model file..." copies a ``NAME.safetensors`` + ``NAME.json`` pair into the user folder after checking
both (JSON fields, the safetensors header against the file size); an existing model of that name is only
replaced after a confirmation. A file that cannot be used (missing JSON or weights, corrupt or truncated
file, a model of another kind, weights that do not fit the network) shows its own message in the list and
below it; the other models still list and load.

Nothing here imports torch on the UI thread: listing reads JSON and safetensors headers only, and the
device list is probed in a worker the first time the panel is shown (or :meth:`probe_devices`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QMessageBox, QPushButton, QTextBrowser, QVBoxLayout, QWidget)

from ctstudio import checkpoints
from ctstudio.errors import CTStudioError, ModelError
from ctstudio.jobs import Progress

#: how each kind is named to a user
KIND_NAMES = {"score": "score model (ASCII generation)", "icnet": "IC-Net (intensity calibration)",
              "ggcl": "GGCL kernel conversion", "cgan": "3D cGAN (denoise / depixelate)"}


@dataclass
class ModelEntry:
    """One model file found on disk: its meta (the JSON), or the error that makes it unusable."""

    name: str
    path: Path  # the .safetensors path (or the .json when the weights are missing)
    source: str  # "bundled" or "user"
    meta: dict = field(default_factory=dict)
    error: str = ""

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind", ""))

    @property
    def card(self) -> dict:
        return self.meta.get("card", {}) if isinstance(self.meta.get("card"), dict) else {}

    @property
    def is_demo(self) -> bool:
        card = self.card
        text = f"{card.get('summary', '')} {self.name}".lower()
        return bool(card.get("demo_note")) or "demo" in text

    @property
    def size_mb(self) -> float:
        try:
            return self.path.stat().st_size / 1e6
        except OSError:
            return 0.0


def _check_entry(st: Path, js: Path) -> tuple[dict, str]:
    """(meta, "") for a usable pair; ({...}, message) otherwise. Reads JSON and the safetensors header only."""
    meta: dict = {}
    try:
        meta = checkpoints.read_meta(js)
        if not st.is_file():
            raise ModelError("the model's weights file is missing", path=st,
                             hint="a model is NAME.safetensors + NAME.json side by side")
        checkpoints.check_safetensors(st)
    except CTStudioError as exc:
        return meta, str(exc)
    return meta, ""


def scan_models(kinds: tuple[str, ...] | None = None, dirs: list[tuple[str, Path]] | None = None) -> list[ModelEntry]:
    """Every model pair in the bundled and user folders (bundled first), usable or not.

    With ``kinds``, usable models of other kinds are left out (they belong to other tabs); broken files,
    whose kind cannot be trusted, are always listed with their error."""
    if dirs is None:
        dirs = [("bundled", checkpoints.BUNDLED_DIR), ("user", checkpoints.user_models_dir())]
    out: list[ModelEntry] = []
    for source, d in dirs:
        if not d.is_dir():
            continue
        bases = sorted({p.name[: -len(".safetensors")] for p in d.glob("*.safetensors")}
                       | {p.name[: -len(".json")] for p in d.glob("*.json")})
        for base in bases:
            st, js = d / f"{base}.safetensors", d / f"{base}.json"
            if not st.exists() and js.exists():
                try:  # a JSON that is no model at all (e.g. a notes file) is not listed
                    import json

                    data = json.loads(js.read_text(encoding="utf-8"))
                    if not (isinstance(data, dict) and "kind" in data):
                        continue
                except (OSError, ValueError, UnicodeDecodeError):
                    pass
            meta, error = _check_entry(st, js)
            entry = ModelEntry(str(meta.get("name") or base), st if st.exists() else js, source, meta, error)
            if not error and kinds is not None and entry.kind not in kinds:
                continue
            out.append(entry)
    return out


def card_html(entry: ModelEntry) -> str:
    """The model card as HTML: what a user needs to judge a model before running it."""
    from html import escape

    def row(label: str, value) -> str:
        return f"<tr><td><b>{escape(label)}</b></td><td>{escape(str(value))}</td></tr>"

    parts = [f"<h3>{escape(entry.name)}</h3>"]
    if entry.error:
        parts.append(f"<p style='color:#d04040'><b>Cannot be used:</b> {escape(entry.error)}</p>")
        return "".join(parts)
    card, meta = entry.card, entry.meta
    cfg = meta.get("config", {}) if isinstance(meta.get("config"), dict) else {}
    if entry.is_demo:
        parts.append("<p style='background:#805000;color:white;padding:2px'><b>DEMO MODEL</b> "
                     f"{escape(str(card.get('demo_note', 'trained on tiny data; not a research model')))}</p>")
    if card.get("summary"):
        parts.append(f"<p>{escape(str(card['summary']))}</p>")
    rows = [row("kind", KIND_NAMES.get(entry.kind, entry.kind)), row("source", f"{entry.source}: {entry.path}"),
            row("size", f"{entry.size_mb:.2f} MB")]
    size = cfg.get("image_size") or card.get("resolution")
    if size:
        rows.append(row("resolution", size if not isinstance(size, int) else f"{size}x{size}"))
    if cfg.get("k"):
        rows.append(row("K (slices per window)", cfg["k"]))
    hu = card.get("hu_range") or cfg.get("hu_range")
    if isinstance(hu, dict):
        hu = [hu.get("lower"), hu.get("upper")]
    if hu:
        rows.append(row("HU range", f"[{hu[0]:g}, {hu[1]:g}]" if all(isinstance(v, (int, float)) for v in hu) else hu))
    if card.get("spacing_xyz_mm"):
        rows.append(row("spacing (x, y, z)", " x ".join(f"{v:g}" for v in card["spacing_xyz_mm"]) + " mm"))
    if card.get("steps"):
        rows.append(row("training steps", card["steps"]))
    data = card.get("training_data")
    if isinstance(data, dict):
        rows.append(row("trained on", data.get("name", "")))
        if data.get("licence"):
            rows.append(row("data licence", data["licence"]))
    elif data:
        rows.append(row("trained on", data))
    if card.get("licence"):
        rows.append(row("licence", card["licence"]))
    parts.append("<table cellspacing=2>" + "".join(rows) + "</table>")
    measured = card.get("measured")
    if isinstance(measured, dict) and measured:
        items = []
        for k, v in list(measured.items())[:12]:
            if isinstance(v, dict):
                v = ", ".join(f"{kk} {vv}" for kk, vv in list(v.items())[:6])
            items.append(f"<li><b>{escape(str(k))}</b>: {escape(str(v))[:300]}</li>")
        parts.append("<p><b>Measured</b></p><ul>" + "".join(items) + "</ul>")
    return "".join(parts)


def add_model_file(path, overwrite: bool = False, kinds: tuple[str, ...] | None = None) -> Path:
    """Copy the model pair of ``path`` (its .safetensors or .json) into the user folder; returns the new
    .safetensors path. Both files are checked first; an existing model of that name needs ``overwrite``."""
    st, js = checkpoints._paths_for(Path(path))
    if not js.is_file():
        raise ModelError("the model's JSON file is missing", path=js,
                         hint="a model is NAME.safetensors + NAME.json side by side; add both")
    meta, error = _check_entry(st, js)
    if error:
        raise ModelError(error)
    if kinds is not None and meta["kind"] not in kinds:
        raise ModelError(f"this is a {KIND_NAMES.get(meta['kind'], meta['kind'])}; this tab takes "
                         f"{' or '.join(KIND_NAMES.get(k, k) for k in kinds)}", path=st,
                         hint="add it from the tab that uses this kind of model (it is copied all the same "
                              "when you add it there)")
    dest = checkpoints.user_models_dir()
    dest.mkdir(parents=True, exist_ok=True)
    base = st.name[: -len(".safetensors")]
    new_st, new_js = dest / f"{base}.safetensors", dest / f"{base}.json"
    if new_st.resolve() == st.resolve():
        return new_st  # already in the user folder
    if (new_st.exists() or new_js.exists()) and not overwrite:
        raise ModelError(f"a model named {base!r} exists in the user folder", path=new_st,
                         hint="confirm to replace it, or rename the files before adding them")
    tmp_st, tmp_js = new_st.with_name(new_st.name + ".part"), new_js.with_name(new_js.name + ".part")
    shutil.copyfile(st, tmp_st)
    shutil.copyfile(js, tmp_js)
    tmp_st.replace(new_st)
    tmp_js.replace(new_js)  # the JSON last: a model whose JSON exists is complete
    return new_st


# -- jobs (run in workers: these import torch) -------------------------------------------------------------
def devices_job(*, cancel=None):
    """The devices present (:func:`ctstudio.pipelines.devices.available_devices`); imports torch."""
    from ctstudio.pipelines.devices import available_devices

    yield Progress("devices", 1, "probe").event("start")
    return available_devices()


def load_model_job(path: str, kinds: tuple[str, ...], device: str, purpose: str, *, cancel=None):
    """Load a model (cached) through the one loader; returns the LoadedModel."""
    from ctstudio.pipelines.models import load_model

    yield Progress("load", 1, "model").event("start", path=str(path), device=device)
    return load_model(path, kind=kinds, device=device, purpose=purpose)


class ModelsPanel(QWidget):
    """A list of models of ``kinds``, the selected model's card, the device and Load (see module doc)."""

    #: a model is loaded and ready (ctstudio.pipelines.models.LoadedModel)
    model_loaded = Signal(object)
    #: loading failed: the message shown
    load_failed = Signal(str)
    #: the devices were probed (list of names, "auto" first)
    devices_ready = Signal(list)

    def __init__(self, main_window, kinds: tuple[str, ...] = ("score",), purpose: str = "this tab",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mw = main_window
        self.kinds = tuple(kinds)
        self.purpose = purpose
        self.entries: list[ModelEntry] = []
        self.loaded = None  # the LoadedModel last loaded
        self._devices_probed = False
        self._worker = None

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.list = QListWidget()
        self.list.setMaximumHeight(110)
        self.list.currentRowChanged.connect(self._selected)
        self.list.itemDoubleClicked.connect(lambda *_: self.load_selected())
        lay.addWidget(self.list)
        self.card = QTextBrowser()
        self.card.setOpenExternalLinks(False)
        self.card.setMinimumHeight(90)
        lay.addWidget(self.card, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Device"))
        self.device_combo = QComboBox()
        self.device_combo.addItem("auto")
        self.device_combo.setToolTip("auto: CUDA, then MPS, then CPU (only the devices present are listed)")
        row.addWidget(self.device_combo)
        self.load_button = QPushButton("Load")
        self.load_button.clicked.connect(self.load_selected)
        row.addWidget(self.load_button)
        self.add_button = QPushButton("Add model file...")
        self.add_button.clicked.connect(self.add_model_dialog)
        row.addWidget(self.add_button)
        self.refresh_button = QPushButton("Rescan")
        self.refresh_button.setToolTip(f"look again in {checkpoints.user_models_dir()}")
        self.refresh_button.clicked.connect(self.refresh)
        row.addWidget(self.refresh_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.message)
        self.refresh()

    # -- listing ------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Scan the bundled and user folders again (keeps the selection by name)."""
        current = self.selected_entry()
        self.entries = scan_models(self.kinds)
        self.list.blockSignals(True)
        self.list.clear()
        for e in self.entries:
            label = f"{e.name}   [{e.source}]"
            if e.error:
                label += "   - cannot be used"
            elif e.is_demo:
                label += "   DEMO"
            item = QListWidgetItem(label)
            item.setToolTip(e.error or str(e.card.get("summary", e.path)))
            if e.error:
                item.setForeground(QBrush(QColor("#d04040")))
            self.list.addItem(item)
        self.list.blockSignals(False)
        names = [e.name for e in self.entries]
        if current is not None and current.name in names:
            self.list.setCurrentRow(names.index(current.name))
        elif self.entries:
            usable = [i for i, e in enumerate(self.entries) if not e.error]
            self.list.setCurrentRow(usable[0] if usable else 0)
        else:
            self.card.setHtml(f"<p>No {' or '.join(self.kinds)} model found in {checkpoints.BUNDLED_DIR} or "
                              f"{checkpoints.user_models_dir()}. Add one with <b>Add model file...</b>, or train "
                              "one with <code>ctstudio train</code>.</p>")

    def selected_entry(self) -> ModelEntry | None:
        i = self.list.currentRow()
        return self.entries[i] if 0 <= i < len(self.entries) else None

    def select(self, name: str) -> bool:
        """Select the model called ``name``; False when there is none."""
        for i, e in enumerate(self.entries):
            if e.name == name:
                self.list.setCurrentRow(i)
                return True
        return False

    def _selected(self, _row: int) -> None:
        e = self.selected_entry()
        if e is None:
            return
        self.card.setHtml(card_html(e))
        self.load_button.setEnabled(not e.error)
        self._say(e.error, error=bool(e.error))

    # -- devices ------------------------------------------------------------------------------------------
    def showEvent(self, ev) -> None:  # noqa: N802
        super().showEvent(ev)
        self.probe_devices()

    def probe_devices(self):
        """List the devices present (in a worker: this imports torch). Once per panel."""
        if self._devices_probed:
            return None
        self._devices_probed = True
        from ctstudio.app.workers import start_worker

        def got(devices: list[str]) -> None:
            current = self.device()
            self.device_combo.clear()
            names = ["auto", *devices]
            self.device_combo.addItems(names)
            if current in names:
                self.device_combo.setCurrentText(current)
            self.devices_ready.emit(names)

        return start_worker(devices_job, kind=f"models-devices-{id(self)}", on_result=got,
                            on_error=lambda exc: self._say(f"cannot list the devices: {exc}", error=True))

    def device(self) -> str:
        """The device chosen: "auto", "cpu", "cuda:0", "mps"..."""
        return self.device_combo.currentText() or "auto"

    def set_device(self, name: str) -> None:
        if self.device_combo.findText(name) < 0:
            self.device_combo.addItem(name)
        self.device_combo.setCurrentText(name)

    # -- loading ------------------------------------------------------------------------------------------
    def load_selected(self):
        """Load the selected model off the UI thread; returns the worker (None when nothing can be loaded)."""
        e = self.selected_entry()
        if e is None:
            self._say("choose a model first", error=True)
            return None
        if e.error:
            self._say(e.error, error=True)
            return None
        from ctstudio.app.workers import start_worker

        self._say(f"loading {e.name} on {self.device()} ...")
        self.load_button.setEnabled(False)

        def done(loaded) -> None:
            self.loaded = loaded
            self._say(f"{loaded.name} loaded on {loaded.device}")
            self.model_loaded.emit(loaded)

        def failed(exc: BaseException) -> None:
            msg = str(exc) if isinstance(exc, CTStudioError) else f"{e.path}: {type(exc).__name__}: {exc}"
            e.error = msg
            row = self.entries.index(e) if e in self.entries else -1
            if row >= 0:
                item = self.list.item(row)
                item.setText(f"{e.name}   [{e.source}]   - cannot be used")
                item.setForeground(QBrush(QColor("#d04040")))
                item.setToolTip(msg)
                self.card.setHtml(card_html(e))
            self._say(msg, error=True)
            self.load_failed.emit(msg)

        self._worker = start_worker(load_model_job, str(e.path), self.kinds, self.device(), self.purpose,
                                    kind=f"models-load-{id(self)}", on_result=done, on_error=failed,
                                    on_finished=lambda: self.load_button.setEnabled(True))
        return self._worker

    # -- adding -------------------------------------------------------------------------------------------
    def add_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add model file", str(Path.home()),
                                              "ctstudio models (*.safetensors *.json);;All files (*)")
        if path:
            self.add_model(path)

    def confirm_replace(self, name: str) -> bool:
        """Ask before replacing a user model of the same name (tests replace this)."""
        answer = QMessageBox.question(self, "Replace model?",
                                      f"A model named {name!r} is already in {checkpoints.user_models_dir()}.\n"
                                      "Replace it with the file you chose?")
        return answer == QMessageBox.StandardButton.Yes

    def add_model(self, path) -> Path | None:
        """Check and copy a model pair into the user folder, rescan and select it; None (message shown) on error."""
        try:
            try:
                new = add_model_file(path, kinds=self.kinds)
            except ModelError as exc:
                base = checkpoints._paths_for(Path(path))[0].name[: -len(".safetensors")]
                if "exists in the user folder" in str(exc) and self.confirm_replace(base):
                    new = add_model_file(path, overwrite=True, kinds=self.kinds)
                else:
                    raise
        except (CTStudioError, OSError) as exc:
            self._say(str(exc), error=True)
            return None
        self.refresh()
        meta = checkpoints.read_meta(new)
        self.select(meta["name"])
        self._say(f"added {meta['name']} to {new.parent}")
        return new

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #d04040;" if error else "")
        self.message.setText(text)
