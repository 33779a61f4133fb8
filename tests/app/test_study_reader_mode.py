"""Reader mode through the real Qt screens (pytest-qt, offscreen): the window is locked to the study,
answers are deliberate (auto-repeat ignored, a minimum viewing time), reading time excludes time away
from the window, the survey has no defaults, reader codes are normalised, a finished reader is told."""

import json
import time

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication

from ctstudio.studies.fixtures import write_phantom_study
from ctstudio.studies.store import Store


def _fill(reg, spec, db, code):
    reg.spec_edit.setText(str(spec))
    reg.db_edit.setText(str(db))
    reg.reader_edit.setText(code)
    reg.fullscreen.setChecked(False)
    for box, text in ((reg.radiologist, "yes"), (reg.certification, "trainee"), (reg.specialty, "neuroradiology"),
                      (reg.screening, "prefer not to say"), (reg.years, "3")):
        box.setCurrentText(text)


def _start(qtbot, tab, spec, db, code):
    _fill(tab.registration, spec, db, code)
    qtbot.mouseClick(tab.registration.start_button, Qt.MouseButton.LeftButton)
    assert tab.screen is tab.tutorial, tab.registration.message.text()
    qtbot.mouseClick(tab.tutorial.button, Qt.MouseButton.LeftButton)
    assert tab.screen is tab.pair


def _key(widget, key, autorepeat):
    QApplication.sendEvent(widget, QKeyEvent(QEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier, "",
                                             autorepeat))


def _n_answers(db):
    return len(Store(db).responses_table())


def test_holding_a_key_for_1_5_s_answers_at_most_one_trial(qtbot, main_window, tmp_path):
    spec = write_phantom_study(tmp_path / "h", n_real=4, n_synthetic=4, trials=10, min_view_ms=200, size=32)
    db = tmp_path / "h.db"
    tab = main_window.tab("Study")
    _start(qtbot, tab, spec, db, "R1")
    qtbot.wait(250)
    # a held key: one press, then auto-repeat events every ~33 ms for 1.5 s (as the issue measured)
    _key(tab.pair, Qt.Key.Key_Left, False)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:
        _key(tab.pair, Qt.Key.Key_Left, True)
        qtbot.wait(33)
    assert _n_answers(db) == 1
    assert tab.screen is tab.pair and tab.pair.progress.text() == "pair 2 of 10"
    assert main_window.tabs.currentWidget() is tab  # the repeats never reached the other tabs


def test_an_answer_before_the_minimum_viewing_time_is_not_recorded(qtbot, main_window, tmp_path):
    spec = write_phantom_study(tmp_path / "m", trials=4, min_view_ms=600, size=32)
    db = tmp_path / "m.db"
    tab = main_window.tab("Study")
    _start(qtbot, tab, spec, db, "R2")  # Begin, then at once:
    qtbot.keyClick(tab.pair, Qt.Key.Key_Right)
    qtbot.mouseClick(tab.pair.right_button, Qt.MouseButton.LeftButton)
    assert _n_answers(db) == 0 and not tab.pair.right_button.isEnabled()
    qtbot.waitUntil(tab.pair.right_button.isEnabled, timeout=3000)  # enabled once 600 ms were read
    qtbot.keyClick(tab.pair, Qt.Key.Key_Right)
    rows = Store(db).responses_table()
    assert len(rows) == 1 and rows[0]["response_ms"] >= 600
    # three quick presses on the next pair: none is recorded
    for _ in range(3):
        qtbot.keyClick(tab.pair, Qt.Key.Key_Left)
    assert _n_answers(db) == 1


def test_other_tabs_and_file_open_are_disabled_during_a_session_and_enabled_after(qtbot, main_window, tmp_path):
    spec = write_phantom_study(tmp_path / "l", trials=2, size=32)
    db = tmp_path / "l.db"
    tab = main_window.tab("Study")
    others = [i for i in range(main_window.tabs.count()) if main_window.tabs.widget(i) is not tab]
    enabled_before = {i: main_window.tabs.isTabEnabled(i) for i in others}
    file_actions = [a for a in main_window.menuBar().actions()[0].menu().actions() if not a.isSeparator()]
    open_action = next(a for a in file_actions if "Open file" in a.text())
    assert open_action.isEnabled() and main_window.acceptDrops()
    _start(qtbot, tab, spec, db, "R3")
    assert not any(main_window.tabs.isTabEnabled(i) for i in others)
    assert not open_action.isEnabled() and not any(a.isEnabled() for a in main_window.menuBar().actions())
    assert not main_window.acceptDrops()
    results = main_window.tab("Results")
    main_window.tabs.setCurrentWidget(results)  # even a switch by code is undone while locked
    qtbot.waitUntil(lambda: main_window.tabs.currentWidget() is tab, timeout=2000)
    # pausing keeps the lock; ending early needs a confirmation
    qtbot.keyClick(tab.pair, Qt.Key.Key_P)
    assert tab.screen is tab.paused and not open_action.isEnabled()
    tab.confirm_end_early = lambda: False
    qtbot.mouseClick(tab.end_early_button, Qt.MouseButton.LeftButton)
    assert tab.screen is tab.paused and tab.locked
    tab.confirm_end_early = lambda: True
    qtbot.mouseClick(tab.end_early_button, Qt.MouseButton.LeftButton)
    assert tab.screen is tab.registration and not tab.locked
    assert {i: main_window.tabs.isTabEnabled(i) for i in others} == enabled_before
    assert open_action.isEnabled() and main_window.acceptDrops()
    kinds = [e["kind"] for e in Store(db).events()]
    assert "session_left_early" in kinds


def test_time_away_from_the_window_is_not_reading_time(qtbot, main_window, tmp_path):
    spec = write_phantom_study(tmp_path / "f", trials=2, size=32)
    db = tmp_path / "f.db"
    tab = main_window.tab("Study")
    _start(qtbot, tab, spec, db, "R4")
    qtbot.wait(100)
    tab._app_state_changed(Qt.ApplicationState.ApplicationInactive)
    time.sleep(0.8)  # the reader is in another program
    tab._app_state_changed(Qt.ApplicationState.ApplicationActive)
    qtbot.wait(100)
    qtbot.keyClick(tab.pair, Qt.Key.Key_Left)
    st = Store(db)
    (row,) = st.responses_table()
    assert 150 <= row["response_ms"] < 700  # ~200 ms read; the 800 ms away are left out
    kinds = [e["kind"] for e in st.events()]
    assert kinds.index("focus_out") < kinds.index("focus_in") < kinds.index("answer")


def test_a_skipped_survey_cannot_be_submitted_and_declined_answers_stay_null(qtbot, main_window, tmp_path):
    spec = write_phantom_study(tmp_path / "s", trials=2, size=32)
    db = tmp_path / "s.db"
    tab = main_window.tab("Study")
    reg = tab.registration
    reg.spec_edit.setText(str(spec))
    reg.db_edit.setText(str(db))
    reg.reader_edit.setText("R5")
    assert all(b.currentIndex() == -1 for b in reg.boxes().values())  # no default answers
    qtbot.mouseClick(reg.start_button, Qt.MouseButton.LeftButton)
    assert tab.screen is reg and "unanswered" in reg.message.text() and "Years of experience" in reg.message.text()
    for box in reg.boxes().values():
        box.setCurrentText("prefer not to say")
    qtbot.mouseClick(reg.start_button, Qt.MouseButton.LeftButton)
    assert tab.screen is tab.tutorial
    r = Store(db).db["readers"].get(1)
    assert [r[k] for k in ("radiologist", "board_certified", "trainee", "specialty", "screening",
                           "years_experience")] == [None] * 6
    assert json.loads(r["survey_skipped"]) == ["board_certified", "radiologist", "screening", "specialty",
                                               "trainee", "years_experience"]
    tab.new_reader()


@pytest.mark.parametrize("bad", ["Dr. Jane Smith", "jane", "R 9", "R9!"])
def test_names_are_refused_as_reader_codes(qtbot, main_window, tmp_path, bad):
    spec = write_phantom_study(tmp_path / "n", trials=2, size=32)
    tab = main_window.tab("Study")
    _fill(tab.registration, spec, tmp_path / "n.db", bad)
    qtbot.mouseClick(tab.registration.start_button, Qt.MouseButton.LeftButton)
    assert tab.screen is tab.registration and "not a reader code" in tab.registration.message.text()
    assert not tab.locked


def test_r9_space_and_R9_are_one_reader_and_a_finished_reader_is_told(qtbot, main_window, tmp_path):
    spec = write_phantom_study(tmp_path / "r", trials=2, size=32)
    db = tmp_path / "r.db"
    tab = main_window.tab("Study")
    _start(qtbot, tab, spec, db, "r9 ")
    qtbot.keyClick(tab.pair, Qt.Key.Key_Left)
    tab.new_reader()  # interrupted after one answer
    _fill(tab.registration, spec, db, "R9")
    tab.registration.years.setCurrentText("20")  # a different answer: the stored profile is shown instead
    qtbot.mouseClick(tab.registration.start_button, Qt.MouseButton.LeftButton)
    assert "answered the survey before" in tab.registration.message.text()
    assert tab.registration.years.currentText() == "3"
    qtbot.mouseClick(tab.registration.start_button, Qt.MouseButton.LeftButton)
    assert tab.screen is tab.tutorial and tab.tutorial.title.text() == "Welcome back"
    qtbot.mouseClick(tab.tutorial.button, Qt.MouseButton.LeftButton)
    qtbot.keyClick(tab.pair, Qt.Key.Key_Left)
    assert tab.screen is tab.end and not tab.locked
    qtbot.mouseClick(tab.end.button, Qt.MouseButton.LeftButton)
    _fill(tab.registration, spec, db, " r9")
    qtbot.mouseClick(tab.registration.start_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(tab.registration.start_button, Qt.MouseButton.LeftButton)  # confirms the profile
    assert tab.screen is tab.registration and "already finished" in tab.registration.message.text()
    st = Store(db)
    assert [r["code"] for r in st.db["readers"].rows] == ["R9"] and st.db["sessions"].count == 1


def test_continuity_in_three_planes_keys_score_the_focused_structure_and_not_visible_is_stored(
        qtbot, main_window, tmp_path):
    spec = write_phantom_study(tmp_path / "c3", kind="continuity", trials=2, mode="reformat", size=48,
                               extra="[continuity]\nstructures = ['skull', 'ventricles', 'basilar artery']\n")
    db = tmp_path / "c3.db"
    tab = main_window.tab("Study")
    _fill(tab.registration, spec, db, "C3")
    qtbot.mouseClick(tab.registration.start_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(tab.tutorial.button, Qt.MouseButton.LeftButton)
    scr = tab.continuity
    assert tab.screen is scr and scr.planes.isVisible() and not scr.view.isVisible()
    pv = scr.planes
    cube = pv.cube
    # the three views are planes of the same case: axial z, coronal y, sagittal x through one point
    z, y, x = pv.pos
    ax, co, sa = (img.image for img in pv.images)
    assert ax.shape == (48, 48) and co.shape == sa.shape == (cube.shape[0], 48)
    assert ax[y, x] == co[cube.shape[0] - 1 - z, x] == sa[cube.shape[0] - 1 - z, y]
    pv.sliders[1].setValue(y + 5)  # the coronal slider moves the coronal plane and the axial crosshair
    assert pv.pos[1] == y + 5 and pv.lines[0][1].value() == y + 5 + 0.5
    # keys: 3 scores the highlighted (first) structure and moves on, 0 = not visible, Up goes back
    scr.setFocus()
    qtbot.keyClick(scr, Qt.Key.Key_3)
    qtbot.keyClick(scr, Qt.Key.Key_0)
    qtbot.keyClick(scr, Qt.Key.Key_Up)
    qtbot.keyClick(scr, Qt.Key.Key_1)  # corrects the second structure
    assert scr.scores() == {"skull": 3, "ventricles": 1} and not scr.next_button.isEnabled()
    qtbot.keyClick(scr, Qt.Key.Key_0)  # third: not visible
    assert scr.scores() == {"skull": 3, "ventricles": 1, "basilar artery": None} and scr.next_button.isEnabled()
    qtbot.mouseClick(scr.next_button, Qt.MouseButton.LeftButton)
    assert scr.progress.text() == "case 2 of 2"
    (row,) = Store(db).responses_table()
    assert json.loads(row["scores_json"]) == {"skull": 3, "ventricles": 1, "basilar artery": None}
    tab.new_reader()
