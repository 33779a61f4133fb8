"""The Study and Results tabs through the real Qt screens (pytest-qt, offscreen).

A 10-pair study for 3 scripted readers (keys, buttons, a pause, an interrupted session that
resumes), then the Results tab analyses the database and shows tables and plots; the continuity
screen refuses to go on until every structure is scored."""

import re

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton

from ctstudio.studies.fixtures import write_phantom_study
from ctstudio.studies.store import Store


def _labels(widget):
    return " ".join(lab.text() for lab in widget.findChildren(QLabel)) + " " + " ".join(
        b.text() for b in widget.findChildren(QPushButton))


def _register(qtbot, tab, spec, db, code, radiologist, cert):
    reg = tab.registration
    reg.spec_edit.setText(str(spec))
    reg.db_edit.setText(str(db))
    reg.reader_edit.setText(code)
    reg.fullscreen.setChecked(False)
    reg.radiologist.setCurrentText("yes" if radiologist else "no")
    reg.certification.setCurrentText(cert)
    reg.specialty.setCurrentText("neuroradiology" if radiologist else "none")
    reg.screening.setCurrentText("no")
    reg.years.setCurrentText("7" if radiologist else "0")
    qtbot.mouseClick(reg.start_button, Qt.MouseButton.LeftButton)
    if tab.screen is reg and "answered the survey before" in reg.message.text():  # a returning reader confirms
        qtbot.mouseClick(reg.start_button, Qt.MouseButton.LeftButton)
    assert tab.screen is tab.tutorial, reg.message.text()


def test_three_readers_ten_pairs_through_the_screens_then_results(qtbot, main_window, tmp_path):
    spec = write_phantom_study(tmp_path / "study", n_real=4, n_synthetic=4, trials=10, size=128)
    db = tmp_path / "study.db"
    tab = main_window.tab("Study")
    assert tab is not None and type(tab).__module__ == "ctstudio.app.tabs.study"
    main_window.tabs.setCurrentWidget(tab)
    secrets = [str(tmp_path), ".nii", "synthetic", "case0", "study.toml"]  # the question itself says "real"
    readers = [("R1", True, "board-certified"), ("R2", True, "trainee"), ("R3", False, "neither")]
    for n, (code, rad, cert) in enumerate(readers):
        _register(qtbot, tab, spec, db, code, rad, cert)
        assert "10 pairs" in tab.tutorial.text.text()
        qtbot.mouseClick(tab.tutorial.button, Qt.MouseButton.LeftButton)
        k = 1
        while tab.screen is tab.pair:
            assert tab.pair.progress.text() == f"pair {k} of 10"
            shown = _labels(tab.pair) + main_window.windowTitle()
            assert not any(s in shown for s in secrets) and not re.search(r"c[0-9a-f]{10}", shown)
            assert tab.pair.left.image_data.shape == tab.pair.right.image_data.shape == (128, 128)
            for v in tab.pair.views:  # the image box fills the view (also after an earlier session ended)
                assert v.vb.scene() is v.scene() and abs(v.vb.geometry().width() - v.viewport().width()) < 2
            if code == "R2" and k == 4:  # a pause, then resume
                qtbot.keyClick(tab.pair, Qt.Key.Key_P)
                assert tab.screen is tab.paused and "pair 4 of 10" in tab.paused.text.text()
                qtbot.mouseClick(tab.paused.button, Qt.MouseButton.LeftButton)
                assert tab.screen is tab.pair
            if code == "R3" and k == 5:  # the app is closed mid-session; the reader comes back
                tab.new_reader()
                _register(qtbot, tab, spec, db, code, rad, cert)
                assert tab.tutorial.title.text() == "Welcome back" and "pair 5 of 10" in tab.tutorial.text.text()
                qtbot.mouseClick(tab.tutorial.button, Qt.MouseButton.LeftButton)
                assert tab.pair.progress.text() == "pair 5 of 10"
            if k % 3 == 0:
                qtbot.mouseClick(tab.pair.right_button, Qt.MouseButton.LeftButton)
            elif k % 3 == 1:
                qtbot.keyClick(tab.pair, Qt.Key.Key_Left)
            else:
                qtbot.keyClick(tab.pair, Qt.Key.Key_2)
            k += 1
        assert k == 11 and tab.screen is tab.end and "all 10 pairs" in tab.end.text.text()
        qtbot.mouseClick(tab.end.button, Qt.MouseButton.LeftButton)
        assert tab.screen is tab.registration

    st = Store(db)
    rows = st.responses_table()
    assert len(rows) == 30
    by_reader = {}
    for r in rows:
        by_reader.setdefault(r["reader"], []).append(r["choice"])
    expected = ["left" if q % 3 == 1 else "right" for q in range(1, 11)]
    assert by_reader == {"R1": expected, "R2": expected, "R3": expected}
    assert {r["reader"]: r["radiologist"] for r in rows} == {"R1": 1, "R2": 1, "R3": 0}
    assert all(r["zoom_json"] and r["window_json"] for r in rows)
    kinds = [e["kind"] for e in st.events()]
    assert kinds.count("session_paused") == 1 and kinds.count("session_resumed") == 1
    # the next pair appeared quickly after each answer (prefetch); the figure is measured in bench/
    assert tab.transitions_ms and sorted(tab.transitions_ms)[len(tab.transitions_ms) // 2] < 100

    results = main_window.tab("Results")
    # after reader sessions in this window the results stay hidden until the study owner unlocks them
    assert results.locked_reason and results.unlock_button.isVisibleTo(results)
    results.db_edit.setText(str(db))
    assert results.analyze() is None and results.table.rowCount() == 0 and not results.plot_labels
    assert results.unlock(confirm=False) and not results.unlock_button.isVisibleTo(results)
    # the owner's unlock holds for this database even if a reader left a session unfinished in it
    with Store(db) as st:
        st.conn.execute("UPDATE sessions SET state = 'paused' WHERE id = 1")
    out = tmp_path / "chosen_results"
    results.out_edit.setText(str(out))
    with qtbot.waitSignal(results.analyzed, timeout=60000):
        qtbot.keyClick(results.db_edit, Qt.Key.Key_Return)  # Enter in the path field analyses
    assert not (tmp_path / "study_results").exists()  # nothing beside the database
    for f in ("per_reader.csv", "groups.csv", "conover.csv", "per_reader_hist.png", "kde_by_group.png",
              "success_by_question.png", "responses.csv", "summary.txt"):
        assert (out / f).stat().st_size > 0, f
    assert results.table.rowCount() == 3 and "30" in results.summary.toPlainText()
    assert len(results.plot_labels) == 3 and not results.plot_labels[0].pixmap().isNull()
    # every plot is whole: the plots' host is as wide as the plots (the scroll area scrolls)
    assert results.plots_host.width() >= sum(lab.pixmap().width() for lab in results.plot_labels)
    assert results.plots_host.height() >= max(lab.pixmap().height() for lab in results.plot_labels)
    texts = {results.table.item(r, c).text() for r in range(results.table.rowCount())
             for c in range(results.table.columnCount())}
    assert "None" not in texts and "nan" not in texts  # R3 skipped survey fields: shown as "-"



def test_continuity_screen_needs_every_structure_and_scrolls(qtbot, main_window, tmp_path):
    spec = write_phantom_study(tmp_path / "c", kind="continuity", trials=2, mode="volume", size=64)
    db = tmp_path / "c.db"
    tab = main_window.tab("Study")
    _register(qtbot, tab, spec, db, "C1", True, "trainee")
    qtbot.mouseClick(tab.tutorial.button, Qt.MouseButton.LeftButton)
    scr = tab.continuity
    assert tab.screen is scr and scr.progress.text() == "case 1 of 2"
    # the view shows the case: its image box is in the scene and the centre of the view is not black
    assert scr.view.vb.scene() is scr.view.scene()
    qtbot.waitUntil(lambda: scr.view.grab().toImage().pixelColor(scr.view.width() // 2,
                                                                 scr.view.height() // 2).value() > 0, timeout=5000)
    assert len(scr.groups) == 8 and not scr.next_button.isEnabled()
    before = scr.view.index
    scr.view.setFocus()
    qtbot.keyClick(scr.view, Qt.Key.Key_PageUp)
    assert scr.view.index == before + 1 and scr.slider.value() == before + 1
    structures = list(scr.groups)
    for s in structures[:-1]:
        scr.set_score(s, 2)
    assert not scr.next_button.isEnabled() and "still to score: 1" in scr.missing.text()
    scr.set_score(structures[-1], 3)
    assert scr.next_button.isEnabled()
    scr.comment.setText("sinus looks odd")
    qtbot.mouseClick(scr.next_button, Qt.MouseButton.LeftButton)
    assert scr.progress.text() == "case 2 of 2" and not scr.next_button.isEnabled()  # scores reset
    for s in structures:
        scr.set_score(s, 1)
    qtbot.mouseClick(scr.next_button, Qt.MouseButton.LeftButton)
    assert tab.screen is tab.end
    rows = Store(db).responses_table()
    import json

    assert rows[0]["comment"] == "sinus looks odd"
    assert json.loads(rows[0]["scores_json"])[structures[-1]] == 3
    assert json.loads(rows[1]["scores_json"]) == {s: 1 for s in structures}


def test_a_bad_spec_shows_a_clear_message_and_the_tab_stays_usable(qtbot, main_window, tmp_path):
    tab = main_window.tab("Study")
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nname = "x"\nkind = "nope"\nseed = 1\n')
    reg = tab.registration
    reg.spec_edit.setText(str(bad))
    reg.db_edit.setText(str(tmp_path / "x.db"))
    reg.reader_edit.setText("R1")
    qtbot.mouseClick(reg.start_button, Qt.MouseButton.LeftButton)
    assert tab.screen is reg and "study.kind" in reg.message.text()
    box = main_window.error_box
    if box is not None:
        box.close()


def test_three_planes_side_by_side_and_two_tabs_on_one_database(qtbot, tmp_path):
    """Two app instances (two Study tabs, two connections) answer in turn on one database file."""
    from ctstudio.app.tabs.study import Tab

    spec = write_phantom_study(tmp_path / "t", n_real=3, n_synthetic=3, trials=4, mode="three_planes", size=48)
    db = tmp_path / "two.db"
    tabs = []
    for code in ("A1", "B1"):
        t = Tab(None)
        qtbot.addWidget(t)
        t.show()
        _register(qtbot, t, spec, db, code, True, "trainee")
        t.begin()
        tabs.append(t)
    assert tabs[0].pair.left.image_data.shape == (48, 144)  # three 48x48 planes side by side
    for _ in range(4):
        for t in tabs:
            qtbot.keyClick(t.pair, Qt.Key.Key_Right)
    assert all(t.screen is t.end for t in tabs)
    rows = Store(db).responses_table()
    assert sorted((r["reader"], r["question_index"]) for r in rows) == [(c, q) for c in ("A1", "B1") for q in range(1, 5)]
    for t in tabs:
        t.shutdown()


def test_a_case_file_gone_mid_study_gives_a_message_and_answers_stay(qtbot, main_window, tmp_path):
    spec = write_phantom_study(tmp_path / "g", n_real=2, n_synthetic=2, trials=4, size=32)
    db = tmp_path / "g.db"
    tab = main_window.tab("Study")
    _register(qtbot, tab, spec, db, "G1", False, "neither")
    qtbot.mouseClick(tab.tutorial.button, Qt.MouseButton.LeftButton)
    qtbot.keyClick(tab.pair, Qt.Key.Key_Left)
    tab.session._pool.shutdown(wait=True)  # let the prefetch settle, then drop every cached image
    tab.session._pool = None
    tab.session._cache.clear()
    tab.session._futures.clear()
    for f in (tmp_path / "g" / "real").glob("*.nii.gz"):
        f.write_bytes(b"broken")
    qtbot.keyClick(tab.pair, Qt.Key.Key_Left)
    assert tab.screen is tab.registration and "Your answers so far are saved" in tab.registration.message.text()
    assert len(Store(db).responses_table()) == 2
    if main_window.error_box is not None:
        main_window.error_box.close()
