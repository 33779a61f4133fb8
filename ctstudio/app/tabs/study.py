"""The Study tab: a blinded reader session on screen.

Screens (a QStackedWidget): registration + survey -> tutorial (or "welcome back" when a session
resumes) -> pair screen or continuity screen -> pause -> end. The screens drive a
:class:`ctstudio.studies.session.ReaderSession` (no Qt, the same object ``ctstudio study run``
drives); every answer is committed to the study database before the next trial is shown. The
next trial's images are prefetched while the reader looks at the current one.

Blinding: the screens show opaque progress ("pair 3 of 10") and the images on the study's display
grid; no file name, path, token, class or geometry reaches the screen or the window title, and no
feedback is given. Keys: Left/1 = left image is real, Right/2 = right image is real, P = pause.

Reader mode: while a session runs the window is locked to this tab (``MainWindow.set_reader_lock``:
other tabs, menus, File > Open, drag and drop disabled; optionally full screen); leaving goes through
Pause, and ending early asks for confirmation. Answers are deliberate: auto-repeat key events are
ignored (holding a key answers at most once), and an answer counts only after the trial has been read
for the spec's ``min_view_ms`` (the answer buttons stay disabled until then; earlier key presses are
dropped, not recorded). Reading time stops while the window is inactive (logged as focus events).

Survey: no field has a default; each must be answered or marked "prefer not to say" (stored as NULL
and listed as skipped). A reader code seen before in the database brings back its stored profile for
the reader to confirm. A finished code is told so and offered nothing to redo.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QFileDialog, QFormLayout, QGridLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QMessageBox, QPushButton,
                               QRadioButton, QScrollArea, QSlider, QStackedWidget, QVBoxLayout, QWidget)

from ctstudio.app.widgets.study_planes import ThreePlaneStudyView
from ctstudio.app.widgets.study_view import StudyView
from ctstudio.errors import CTStudioError, InputError
from ctstudio.imaging.window import Window, preset

TITLE = "Study"
ORDER = 50

DECLINE = "prefer not to say"
YES_NO = ("yes", "no", DECLINE)
CERT_CHOICES = ("board-certified", "trainee", "neither", DECLINE)
SPECIALTIES = ("neuroradiology", "general radiology", "breast imaging", "other", "none", DECLINE)
YEARS = tuple(str(y) for y in range(0, 41)) + ("more than 40", DECLINE)
#: keys of the pair screen: Left/1 = left is real, Right/2 = right is real, P = pause
PAIR_KEYS = {Qt.Key.Key_Left: "left", Qt.Key.Key_1: "left", Qt.Key.Key_Right: "right", Qt.Key.Key_2: "right",
             Qt.Key.Key_P: "pause"}


def _title(text: str) -> QLabel:
    lab = QLabel(text)
    lab.setStyleSheet("font-size: 18px; font-weight: bold;")
    return lab


class RegistrationScreen(QWidget):
    start_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.addWidget(_title("Reader study"))
        intro = QLabel("Choose the study and the database, enter your reader code (a pseudonym, not your "
                       "name) and answer the short survey. Your answers are saved after every image.")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        form = QFormLayout()
        self.spec_edit = self._path_row(form, "Study spec", "study spec (.toml)", self._browse_spec)
        self.db_edit = self._path_row(form, "Database", "study database (.db), created when missing", self._browse_db)
        self.reader_edit = QLineEdit()
        self.reader_edit.setPlaceholderText("e.g. R07")
        form.addRow("Reader code", self.reader_edit)
        lay.addLayout(form)

        survey = QGroupBox("About you (every question needs an answer; \"prefer not to say\" is one)")
        sf = QFormLayout(survey)
        self.radiologist = self._choice(sf, "Are you a radiologist?", YES_NO)
        self.certification = self._choice(sf, "Certification", CERT_CHOICES)
        self.specialty = self._choice(sf, "Specialty", SPECIALTIES)
        self.screening = self._choice(sf, "Do you work in screening?", YES_NO)
        self.years = self._choice(sf, "Years of experience", YEARS)
        self.fullscreen = QCheckBox("Full screen during the session")
        self.fullscreen.setChecked(True)
        lay.addWidget(survey)
        lay.addWidget(self.fullscreen)
        #: the code whose stored profile the form shows (the reader is asked to confirm it)
        self.profile_shown_for: str | None = None
        self.profile_loaded: dict | None = None
        self.message = QLabel("")
        self.message.setStyleSheet("color: #c0392b;")
        self.message.setWordWrap(True)
        lay.addWidget(self.message)
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start_requested)
        lay.addWidget(self.start_button, alignment=Qt.AlignmentFlag.AlignRight)
        lay.addStretch(1)
        for edit in (self.spec_edit, self.db_edit, self.reader_edit):  # an old error goes once the input changes
            edit.textEdited.connect(lambda *_: self.message.setText(""))

    @staticmethod
    def _choice(form: QFormLayout, label: str, items) -> QComboBox:
        box = QComboBox()
        box.addItems(list(items))
        box.setPlaceholderText("(choose)")
        box.setCurrentIndex(-1)  # no default answer
        form.addRow(label, box)
        return box

    def boxes(self) -> dict[str, QComboBox]:
        return {"Are you a radiologist?": self.radiologist, "Certification": self.certification,
                "Specialty": self.specialty, "Do you work in screening?": self.screening,
                "Years of experience": self.years}

    def clear_survey(self) -> None:
        for b in self.boxes().values():
            b.setCurrentIndex(-1)
        self.profile_shown_for = None
        self.profile_loaded = None

    def show_profile(self, code: str, profile: dict) -> None:
        """Fill the survey from a stored profile (the reader confirms or corrects it)."""
        skipped = set(profile.get("survey_skipped") or [])

        def yn(v, field):
            return DECLINE if field in skipped or v is None else ("yes" if v else "no")

        self.radiologist.setCurrentText(yn(profile.get("radiologist"), "radiologist"))
        self.screening.setCurrentText(yn(profile.get("screening"), "screening"))
        if profile.get("board_certified") is None and profile.get("trainee") is None:
            self.certification.setCurrentText(DECLINE)
        else:
            self.certification.setCurrentText("board-certified" if profile.get("board_certified") else
                                              "trainee" if profile.get("trainee") else "neither")
        spec = profile.get("specialty")
        self.specialty.setCurrentText(DECLINE if spec is None else spec if spec in SPECIALTIES else "other")
        y = profile.get("years_experience")
        self.years.setCurrentText(DECLINE if y is None else "more than 40" if y > 40 else str(int(y)))
        self.profile_shown_for = code
        self.profile_loaded = self.survey()

    @staticmethod
    def _path_row(form: QFormLayout, label: str, placeholder: str, browse) -> QLineEdit:
        """A form row: a path field with a Browse... button beside it."""
        edit = QLineEdit()
        edit.setPlaceholderText(placeholder)
        row = QHBoxLayout()
        row.addWidget(edit)
        button = QPushButton("Browse...")
        button.clicked.connect(browse)
        row.addWidget(button)
        form.addRow(label, row)
        return edit

    def _browse_spec(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Study spec", "", "Study spec (*.toml);;All files (*)")
        if path:
            self.spec_edit.setText(path)

    def _browse_db(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Study database", "", "SQLite (*.db);;All files (*)",
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.db_edit.setText(path)

    def survey(self) -> dict:
        """The survey answers; an unanswered question is an InputError naming it. "Prefer not to say"
        leaves the field None and lists it in ``survey_skipped``."""
        missing = [label for label, box in self.boxes().items() if box.currentIndex() < 0]
        if missing:
            raise InputError(f"please answer every survey question (\"{DECLINE}\" is an answer); unanswered: "
                             f"{', '.join(missing)}")
        out: dict = {}
        skipped: list[str] = []

        def yes_no(box, field):
            if box.currentText() == DECLINE:
                skipped.append(field)
                out[field] = None
            else:
                out[field] = box.currentText() == "yes"

        yes_no(self.radiologist, "radiologist")
        yes_no(self.screening, "screening")
        cert = self.certification.currentText()
        if cert == DECLINE:
            skipped += ["board_certified", "trainee"]
            out["board_certified"] = out["trainee"] = None
        else:
            out["board_certified"], out["trainee"] = cert == "board-certified", cert == "trainee"
        spec = self.specialty.currentText()
        if spec == DECLINE:
            skipped.append("specialty")
        out["specialty"] = None if spec == DECLINE else spec
        years = self.years.currentText()
        if years == DECLINE:
            skipped.append("years_experience")
        out["years_experience"] = None if years == DECLINE else 41.0 if years == "more than 40" else float(years)
        out["survey_skipped"] = sorted(skipped)
        return out


class _WrapLabel(QLabel):
    """A word-wrapped label of fixed width that always gets the height its text needs."""

    def setText(self, text: str) -> None:  # noqa: N802
        super().setText(text)
        self.setMinimumHeight(self.heightForWidth(self.width()) + 4)


class MessageScreen(QWidget):
    """Tutorial / welcome back / paused / end: a title, a text and one button."""

    clicked = Signal()

    def __init__(self, title: str, button: str, parent=None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.addStretch(1)
        self.title = _title(title)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.title)
        self.text = _WrapLabel("")
        self.text.setWordWrap(True)
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text.setStyleSheet("font-size: 14px;")
        self.text.setFixedWidth(720)
        lay.addWidget(self.text, alignment=Qt.AlignmentFlag.AlignCenter)
        self.button = QPushButton(button)
        self.button.clicked.connect(self.clicked)
        lay.addWidget(self.button, alignment=Qt.AlignmentFlag.AlignCenter)
        lay.addStretch(2)


class _WindowChooser(QComboBox):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setToolTip("display window (the same for both images)")

    def configure(self, spec) -> None:
        self.clear()
        d = spec.display
        self.addItem(f"{d.window_name} (study default)", (d.window[0], d.window[1], d.window_name))
        for name in d.allowed_windows:
            w = preset(name)
            if (w.lower, w.upper) != tuple(d.window):
                self.addItem(str(w), (w.lower, w.upper, w.name))
        self.setVisible(not d.window_locked and self.count() > 1)

    def window(self) -> Window:
        lo, hi, name = self.currentData()
        return Window.from_range(lo, hi, name)



def _session_bar(screen, prompt: str | None = None) -> QHBoxLayout:
    """The bar above a session screen: the progress text, the question (``prompt``), the window chooser and
    Pause; sets ``screen.progress``, ``screen.window_box`` and ``screen.pause_button``."""
    top = QHBoxLayout()
    screen.progress = QLabel("")
    screen.progress.setStyleSheet("font-size: 16px; font-weight: bold;")
    top.addWidget(screen.progress)
    top.addStretch(1)
    if prompt:
        top.addWidget(QLabel(prompt))
        top.addStretch(1)
    screen.window_box = _WindowChooser()
    top.addWidget(screen.window_box)
    screen.pause_button = QPushButton("Pause (P)")
    screen.pause_button.clicked.connect(screen.pause_requested)
    top.addWidget(screen.pause_button)
    return top

class PairScreen(QWidget):
    answered = Signal(str)
    pause_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.addLayout(_session_bar(self, "Which image is the real CT?"))
        grid = QGridLayout()
        self.left = StudyView(name="left")
        self.right = StudyView(name="right")
        self.right.link(self.left)  # synced zoom and pan
        self.left.slice_changed.connect(self.right.set_index)  # and synced slice in "volume" mode
        self.right.slice_changed.connect(self.left.set_index)
        self.views = (self.left, self.right)
        grid.addWidget(self.left, 0, 0)
        grid.addWidget(self.right, 0, 1)
        self.left_button = QPushButton("Left is real  (\u2190 or 1)")
        self.right_button = QPushButton("Right is real  (\u2192 or 2)")
        for b in (self.left_button, self.right_button):
            b.setMinimumHeight(40)
        # the screen keeps the keyboard focus, so the answer keys always reach it
        for w in (self.left_button, self.right_button, self.pause_button, self.window_box):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.left_button.clicked.connect(lambda: self.answered.emit("left"))
        self.right_button.clicked.connect(lambda: self.answered.emit("right"))
        grid.addWidget(self.left_button, 1, 0)
        grid.addWidget(self.right_button, 1, 1)
        lay.addLayout(grid, 1)
        hint = QLabel("No time limit. Wheel or pinch to zoom, drag to pan (both images move together).")
        hint.setStyleSheet("color: grey;")
        lay.addWidget(hint)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.window_box.currentIndexChanged.connect(self._window_changed)

    # Answer keys are claimed here (ShortcutOverride) so that window-wide shortcuts of other tabs,
    # e.g. the viewer's number keys for window presets, never fire while a reader answers.
    # Auto-repeat events of a held key are claimed too and then dropped: holding a key answers at most once.
    def event(self, ev) -> bool:  # noqa: D102
        if ev.type() == QEvent.Type.ShortcutOverride and ev.key() in PAIR_KEYS and not ev.modifiers():
            ev.accept()
            return True
        return super().event(ev)

    def keyPressEvent(self, ev) -> None:  # noqa: N802
        action = PAIR_KEYS.get(ev.key()) if not ev.modifiers() else None
        if action and ev.isAutoRepeat():
            ev.accept()
            return
        if action == "pause":
            self.pause_requested.emit()
        elif action:
            self.answered.emit(action)
        else:
            super().keyPressEvent(ev)

    def _window_changed(self) -> None:
        if self.window_box.count():
            w = self.window_box.window()
            for v in self.views:
                v.set_window(w)

    def show_trial(self, progress: str, images, window: Window, reset_view: bool = True) -> None:
        self.progress.setText(progress)
        for v, img in zip(self.views, images):
            v.set_case(img, window, reset_view=reset_view)

    def set_answerable(self, ok: bool) -> None:
        """The answer buttons are enabled only once the minimum viewing time has passed (a subtle cue)."""
        for b in (self.left_button, self.right_button):
            b.setEnabled(ok)


class ContinuityScreen(QWidget):
    answered = Signal()
    pause_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        left = QVBoxLayout()
        left.addLayout(_session_bar(self))
        self.view = StudyView(name="case")
        left.addWidget(self.view, 1)
        self.planes = ThreePlaneStudyView()  # "reformat" cases: axial, coronal, sagittal with sliders
        self.planes.setVisible(False)
        left.addWidget(self.planes, 1)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.valueChanged.connect(self.view.set_index)
        self.view.slice_changed.connect(self.slider.setValue)
        left.addWidget(self.slider)
        hint = QLabel("Scroll: mouse wheel or the sliders; a click moves the crosshair. Ctrl+wheel zooms. Keys: "
                      "1/2/3 score the highlighted structure, 0 = not visible, Up/Down move between structures.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: grey;")
        left.addWidget(hint)
        lay.addLayout(left, 3)
        right = QVBoxLayout()
        right.addWidget(QLabel("<b>Continuity of each structure</b>"))
        self.scale_help = QLabel("")
        self.scale_help.setWordWrap(True)
        right.addWidget(self.scale_help)
        self.form_host = QWidget()
        self.form = QGridLayout(self.form_host)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form_host)
        right.addWidget(scroll, 1)
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("optional comment")
        right.addWidget(self.comment)
        self.next_button = QPushButton("Next")
        self.next_button.setEnabled(False)
        self.next_button.setMinimumHeight(36)
        self.next_button.clicked.connect(self.answered)
        right.addWidget(self.next_button)
        self.missing = QLabel("")
        self.missing.setStyleSheet("color: grey;")
        self.missing.setWordWrap(True)
        right.addWidget(self.missing)
        lay.addLayout(right, 2)
        self.groups: dict[str, QButtonGroup] = {}
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.window_box.currentIndexChanged.connect(self._window_changed)
        self.focused = 0
        self.labels: list[QLabel] = []
        self.scale_labels: list[str] = []

    def _window_changed(self) -> None:
        if self.window_box.count():
            self.view.set_window(self.window_box.window())
            self.planes.set_window(self.window_box.window())

    NOT_VISIBLE = 99  # button id of "not visible / not applicable" (stored as None)

    def _score_key(self, ev):
        """(action, value) of a scoring key: ("score", 1..n), ("score", None) for 0, ("move", +-1), ("pause", 0)."""
        if ev.modifiers() or self.comment.hasFocus():
            return None
        k = ev.key()
        if k == Qt.Key.Key_P:
            return ("pause", 0)
        if k == Qt.Key.Key_0:
            return ("score", None)
        if Qt.Key.Key_1 <= k <= Qt.Key.Key_9 and k - Qt.Key.Key_0 <= len(self.scale_labels):
            return ("score", int(k - Qt.Key.Key_0))
        if k in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            return ("move", -1 if k == Qt.Key.Key_Up else 1)
        return None

    def event(self, ev) -> bool:  # noqa: D102
        if ev.type() == QEvent.Type.ShortcutOverride and self._score_key(ev) is not None:
            ev.accept()
            return True
        return super().event(ev)

    def keyPressEvent(self, ev) -> None:  # noqa: N802
        act = self._score_key(ev)
        if act is None:
            super().keyPressEvent(ev)
            return
        ev.accept()
        if ev.isAutoRepeat():
            return
        kind, val = act
        if kind == "pause":
            self.pause_requested.emit()
        elif kind == "move":
            self.focus_structure(self.focused + val)
        elif self.groups:
            s = list(self.groups)[self.focused]
            self.set_score(s, val)
            self.focus_structure(self.focused + 1)

    def focus_structure(self, i: int) -> None:
        """Highlight structure ``i`` (the one the number keys score)."""
        if not self.groups:
            return
        self.focused = max(0, min(len(self.groups) - 1, i))
        for j, lab in enumerate(self.labels):
            lab.setStyleSheet("font-weight: bold; background: #fff3c4;" if j == self.focused else "")

    def configure(self, structures, scale) -> None:
        while self.form.count():
            item = self.form.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.groups = {}
        self.labels = []
        self.scale_labels = list(scale)
        self.scale_help.setText("  ".join(f"{i} = {s}" for i, s in enumerate(scale, 1)) + "  0 = not visible / n.a.")
        for r, s in enumerate(structures):
            lab = QLabel(s)
            self.labels.append(lab)
            self.form.addWidget(lab, r, 0)
            g = QButtonGroup(self)
            for v in range(1, len(scale) + 1):
                rb = QRadioButton(str(v))
                rb.setToolTip(scale[v - 1])
                rb.setFocusPolicy(Qt.FocusPolicy.NoFocus)
                g.addButton(rb, v)
                self.form.addWidget(rb, r, v)
            nv = QRadioButton("not visible")
            nv.setToolTip("the structure is not visible in this case, or does not apply (0)")
            nv.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            g.addButton(nv, self.NOT_VISIBLE)
            self.form.addWidget(nv, r, len(scale) + 1)
            g.idClicked.connect(self._update_next)
            self.groups[s] = g
        self.focus_structure(0)

    def reset_scores(self) -> None:
        for g in self.groups.values():
            g.setExclusive(False)
            for b in g.buttons():
                b.setChecked(False)
            g.setExclusive(True)
        self.comment.clear()
        self._update_next()

    def scores(self) -> dict[str, int | None]:
        """Every answered structure: its score, or None for "not visible / not applicable"."""
        return {s: (None if g.checkedId() == self.NOT_VISIBLE else g.checkedId())
                for s, g in self.groups.items() if g.checkedId() > 0}

    def set_score(self, structure: str, value: int | None) -> None:
        self.groups[structure].button(self.NOT_VISIBLE if value is None else value).click()

    def set_answerable(self, ok: bool) -> None:
        self._answerable = ok
        self._update_next()

    def _update_next(self, *_) -> None:
        missing = [s for s in self.groups if self.groups[s].checkedId() <= 0]
        self.next_button.setEnabled(not missing and getattr(self, "_answerable", True))
        self.missing.setText("" if not missing else f"still to score: {len(missing)}")

    def show_trial(self, progress: str, images, window: Window) -> None:
        self.progress.setText(progress)
        (img,) = images
        three = img.mode == "reformat"
        self.planes.setVisible(three)
        self.view.setVisible(not three)
        if three:
            self.planes.set_case(img, window)
            self.slider.setVisible(False)
            self.reset_scores()
            self.focus_structure(0)
            return
        self.view.set_case(img, window)
        n = self.view.n_slices
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, n - 1))
        self.slider.setValue(self.view.index)
        self.slider.blockSignals(False)
        self.slider.setVisible(n > 1)
        self.reset_scores()


class Tab(QWidget):
    """The Study tab (see module doc)."""

    #: a trial is on screen: (question index, milliseconds from the answer to this paint, or -1)
    trial_shown = Signal(int, float)
    #: the session ended
    session_finished = Signal()

    def __init__(self, main_window=None) -> None:
        super().__init__()
        self.main_window = main_window
        self.store = None
        self.session = None
        self.spec = None
        self.last_transition_ms: float | None = None
        self.transitions_ms: list[float] = []
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.stack = QStackedWidget()
        lay.addWidget(self.stack)
        self.registration = RegistrationScreen()
        self.tutorial = MessageScreen("Before you start", "Begin")
        self.paused = MessageScreen("Paused", "Resume")
        self.end_early_button = QPushButton("End the session early...")
        self.end_early_button.clicked.connect(self.end_early)
        self.paused.layout().insertWidget(self.paused.layout().count() - 1, self.end_early_button,
                                          alignment=Qt.AlignmentFlag.AlignCenter)
        self.end = MessageScreen("Thank you", "Next reader")
        self.pair = PairScreen()
        self.continuity = ContinuityScreen()
        for w in (self.registration, self.tutorial, self.pair, self.continuity, self.paused, self.end):
            self.stack.addWidget(w)
        self.registration.start_requested.connect(self.start)
        self.tutorial.clicked.connect(self.begin)
        self.paused.clicked.connect(self.resume)
        self.end.clicked.connect(self.new_reader)
        self.pair.answered.connect(self.answer_pair)
        self.pair.pause_requested.connect(self.pause)
        self.continuity.answered.connect(self.answer_continuity)
        self.continuity.pause_requested.connect(self.pause)
        #: enables the answer controls once the trial has been read for the minimum viewing time
        self.answer_timer = QTimer(self)
        self.answer_timer.setSingleShot(True)
        self.answer_timer.timeout.connect(self._update_answerable)
        self.locked = False
        tabs = getattr(main_window, "tabs", None)
        if tabs is not None:  # while locked, any switch away from this tab (even by code) is undone
            tabs.currentChanged.connect(self._tab_changed)
        app = QGuiApplication.instance()
        if app is not None:
            app.applicationStateChanged.connect(self._app_state_changed)
        settings = getattr(main_window, "settings", None)
        if settings is not None:
            self.registration.spec_edit.setText(str(settings.value("study/last_spec", "") or ""))
            self.registration.db_edit.setText(str(settings.value("study/last_db", "") or ""))

    # -- helpers ------------------------------------------------------------------------------------
    def _error(self, title: str, message: str) -> None:
        self.registration.message.setText(message)
        if self.main_window is not None and hasattr(self.main_window, "show_error"):
            self.main_window.show_error(title, message)

    def _status(self, text: str) -> None:
        if self.main_window is not None and hasattr(self.main_window, "status"):
            self.main_window.status(text, 5000)

    @property
    def screen(self) -> QWidget:
        return self.stack.currentWidget()

    # -- flow -----------------------------------------------------------------------------------------
    def start(self) -> bool:
        """Registration -> tutorial (new session) or welcome back (resumed)."""
        from ctstudio.studies.session import ReaderSession
        from ctstudio.studies.spec import load_spec
        from ctstudio.studies.store import Store

        from ctstudio.studies.session import AlreadyFinished
        from ctstudio.studies.store import normalise_reader_code

        reg = self.registration
        spec_path, db_path, code = reg.spec_edit.text().strip(), reg.db_edit.text().strip(), reg.reader_edit.text().strip()
        if not spec_path or not db_path or not code:
            reg.message.setText("Give the study spec, the database and your reader code.")
            return False
        self.close_session()
        try:
            code = normalise_reader_code(code)
            self.spec = load_spec(spec_path)
            if self.store is None or self.store.path != str(Path(db_path)):
                if self.store is not None:
                    self.store.close()
                self.store = Store(db_path)
            profile = self.store.profile(code)
            if profile is not None and reg.profile_shown_for != code:
                reg.show_profile(code, profile)
                reg.message.setText(f"Reader {code} has answered the survey before in this database: the stored "
                                    "answers are filled in. Check them (correct them if needed) and press Start "
                                    "again.")
                return False
            survey = reg.survey()
            update = profile is not None and survey != reg.profile_loaded
            self.session = ReaderSession.open(self.store, self.spec, code, survey, update_profile=update)
        except AlreadyFinished as exc:
            reg.message.setText(f"Reader {code} has already finished this study: thank you, there is nothing "
                                "left to answer. If this is not your code, check it with the study owner.")
            self._status(str(exc).splitlines()[0])
            return False
        except CTStudioError as exc:
            msg = str(exc)
            if isinstance(exc, InputError) and ("survey" in msg or "reader code" in msg):
                reg.message.setText(str(exc).splitlines()[0])  # a form mistake: said on the form, no dialog
            else:
                self._error("Cannot start the study", str(exc))
            return False
        reg.message.setText("")
        settings = getattr(self.main_window, "settings", None)
        if settings is not None:
            settings.setValue("study/last_spec", spec_path)
            settings.setValue("study/last_db", db_path)
        s = self.session
        noun = "pair" if self.spec.kind == "pair" else "case"
        if s.state == "finished":
            self._show_end()
            return True
        self.set_locked(True)
        if s.resumed:
            self.tutorial.title.setText("Welcome back")
            self.tutorial.text.setText(f"Your session continues where it stopped: {noun} {s.position} of "
                                       f"{s.n_trials}. Your earlier answers are saved.")
            self.tutorial.button.setText("Continue")
        else:
            self.tutorial.title.setText("Before you start")
            if self.spec.kind == "pair":
                text = (f"You will see {s.n_trials} pairs of CT images. In each pair one image is a real CT and "
                        "the other is synthetic. Choose the one you think is real: click the button under it, or "
                        "press \u2190 / 1 for the left and \u2192 / 2 for the right image. There is no time limit "
                        "and no feedback. Zoom with the wheel or a pinch, drag to pan: both images move together. "
                        "Press P to pause; your answers are saved after every pair.")
            else:
                scale = "; ".join(f"{i} = {t}" for i, t in enumerate(self.spec.scale, 1))
                text = (f"You will see {s.n_trials} CT volumes, some real and some synthetic. Scroll through each "
                        f"one and score the continuity of each of the {len(self.spec.structures)} structures "
                        f"({scale}), or mark it not visible (0) when it is not in the case. Keys 1/2/3 and 0 score "
                        "the highlighted structure; Up/Down move between structures. Every structure needs an "
                        "answer before you can go on; a comment is optional. "
                        "Press P to pause; your answers are saved after every case.")
            self.tutorial.text.setText(text)
            self.tutorial.button.setText("Begin")
        if self.spec.kind == "pair":
            self.pair.window_box.configure(self.spec)
        else:
            self.continuity.window_box.configure(self.spec)
            self.continuity.configure(self.spec.structures, self.spec.scale)
        self.stack.setCurrentWidget(self.tutorial)
        return True

    def _window(self) -> Window:
        box = self.pair.window_box if self.spec.kind == "pair" else self.continuity.window_box
        return box.window() if box.count() else self.session.window

    def _show_current(self, t_answer: float | None = None, resumed: bool = False) -> None:
        s = self.session
        trial = s.current
        if trial is None:
            self._show_end()
            return
        try:
            images = s.images(trial)
        except CTStudioError as exc:  # e.g. a case file moved or damaged since the study was registered
            self._error("Cannot show the next image", f"{exc}\nYour answers so far are saved; fix the case "
                        "file and start again with the same reader code to resume.")
            self.close_session()
            self.set_locked(False)
            self.stack.setCurrentWidget(self.registration)
            return
        if self.spec.kind == "pair":
            self.stack.setCurrentWidget(self.pair)
            self.pair.show_trial(s.progress_text(), images, self._window(), reset_view=not resumed)
            self.pair.setFocus()
            self.pair.left.repaint()
            self.pair.right.repaint()
        else:
            self.stack.setCurrentWidget(self.continuity)
            self.continuity.show_trial(s.progress_text(), images, self._window())
            self.continuity.setFocus()
            self.continuity.view.repaint()
        if not resumed:
            s.shown()
        self._update_answerable()
        ms = -1.0
        if t_answer is not None:
            ms = (time.perf_counter() - t_answer) * 1000.0
            self.last_transition_ms = ms
            self.transitions_ms.append(ms)
        self.trial_shown.emit(int(trial["question_index"]), ms)

    def begin(self) -> None:
        if self.session is None:
            return
        self.session.begin()
        self._show_current()

    def _update_answerable(self) -> None:
        """Enable the answer controls once the minimum viewing time has been read; else re-arm the timer."""
        s = self.session
        ok = s is not None and s.can_answer()
        self.pair.set_answerable(ok)
        self.continuity.set_answerable(ok)
        if s is not None and s.state == "trial" and not ok:
            self.answer_timer.start(max(10, int(s.ms_until_answer()) + 5))

    def _app_state_changed(self, state) -> None:
        """Reading time counts only while the window is active (logged as focus_out / focus_in)."""
        if self.session is None:
            return
        if state == Qt.ApplicationState.ApplicationActive:
            self.session.focus_gained()
            self._update_answerable()
        else:
            self.session.focus_lost()
            self.answer_timer.stop()
            self.pair.set_answerable(False)
            self.continuity.set_answerable(False)

    def _tab_changed(self, _index: int) -> None:
        tabs = self.main_window.tabs
        if self.locked and tabs.currentWidget() is not self:
            QTimer.singleShot(0, lambda: tabs.setCurrentWidget(self) if self.locked else None)

    def _lock_results(self) -> None:
        """The Results tab shows nothing after a reader session until the study owner unlocks it."""
        from ctstudio.app.tabs.results import Tab as ResultsTab

        tabs = getattr(self.main_window, "tabs", None)
        for i in range(tabs.count() if tabs is not None else 0):
            w = tabs.widget(i)
            if isinstance(w, ResultsTab):
                w.lock("a reader session ran in this window; results are shown only to the study owner")

    def set_locked(self, locked: bool) -> None:
        """Reader mode on or off: the window locked to this tab (and full screen when chosen)."""
        if locked == self.locked:
            return
        self.locked = locked
        mw = self.main_window
        if mw is not None and hasattr(mw, "set_reader_lock"):
            mw.set_reader_lock(locked, self)
            if locked:
                self._lock_results()
            if locked and self.registration.fullscreen.isChecked():
                self._was_maximized = mw.isMaximized()
                mw.showFullScreen()
            elif not locked and mw.isFullScreen():
                mw.showMaximized() if getattr(self, "_was_maximized", False) else mw.showNormal()

    def answer_pair(self, side: str) -> None:
        s = self.session
        if s is None or s.state != "trial" or self.stack.currentWidget() is not self.pair:
            return
        if not s.can_answer():  # before the minimum viewing time: dropped, not recorded
            return
        t0 = time.perf_counter()
        w = self._window()
        try:
            s.answer(choice=side, window={"lower": w.lower, "upper": w.upper, "name": w.name},
                     zoom=self.pair.left.view_state())
        except CTStudioError as exc:
            self._error("Answer not saved", str(exc))
            return
        self._show_current(t0)

    def answer_continuity(self) -> None:
        s = self.session
        if s is None or s.state != "trial" or self.stack.currentWidget() is not self.continuity:
            return
        if not s.can_answer():
            return
        t0 = time.perf_counter()
        w = self._window()
        try:
            c = self.continuity
            s.answer(scores=c.scores(), comment=c.comment.text().strip(),
                     window={"lower": w.lower, "upper": w.upper, "name": w.name},
                     zoom=c.planes.view_state() if c.planes.isVisible() else c.view.view_state())
        except CTStudioError as exc:
            self._error("Answer not saved", str(exc))
            return
        self._show_current(t0)

    def pause(self) -> None:
        if self.session is None or self.session.state != "trial":
            return
        self.session.pause()
        noun = "pair" if self.spec.kind == "pair" else "case"
        self.paused.text.setText(f"Your answers so far are saved. You are at {noun} {self.session.position} of "
                                 f"{self.session.n_trials}. You can also close the app and resume later "
                                 "with the same reader code.")
        self.stack.setCurrentWidget(self.paused)

    def resume(self) -> None:
        if self.session is None:
            return
        self.session.resume()
        self._show_current(resumed=True)

    def confirm_end_early(self) -> bool:
        """Ask before ending a session early (tests replace this)."""
        answer = QMessageBox.question(self, "End the session early?",
                                      "Your answers so far are saved, and you can resume later with the same "
                                      "reader code. End the session now?")
        return answer == QMessageBox.StandardButton.Yes

    def end_early(self) -> None:
        """From the pause screen: leave the unfinished session (after confirmation) and unlock the window."""
        if self.session is None or not self.confirm_end_early():
            return
        self.session.store.log_event("session_left_early", self.session.session_id, at_question=self.session.position)
        self.new_reader()

    def _show_end(self) -> None:
        s = self.session
        noun = "pairs" if self.spec.kind == "pair" else "cases"
        self.end.text.setText(f"You have answered all {s.n_trials} {noun}. Your answers are saved. "
                              "You may close the app, or hand over to the next reader.")
        for v in (self.pair.left, self.pair.right, self.continuity.view, self.continuity.planes):
            v.clear_case()
        self.stack.setCurrentWidget(self.end)
        self.set_locked(False)
        self._status("study session finished")
        self.session_finished.emit()

    def new_reader(self) -> None:
        self.close_session()
        self.set_locked(False)
        self.registration.reader_edit.clear()
        self.registration.clear_survey()
        self.stack.setCurrentWidget(self.registration)

    def close_session(self) -> None:
        self.answer_timer.stop()
        if self.session is not None:
            self.session.close()
            self.session = None

    def shutdown(self) -> None:
        self.close_session()
        if self.store is not None:
            self.store.close()
            self.store = None
