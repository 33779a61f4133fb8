"""The study store: migrations (in memory), append-only events, one answer per trial, WAL, two writers."""

import sqlite3
import subprocess
import sys
import textwrap

import pytest
import sqlite_utils

from ctstudio.errors import InputError
from ctstudio.studies import store as store_mod
from ctstudio.studies.fixtures import write_phantom_study
from ctstudio.studies.session import ReaderSession
from ctstudio.studies.spec import load_spec
from ctstudio.studies.store import MIGRATIONS, Store, migrate


def test_migrations_apply_once_in_order_on_an_in_memory_db():
    db = sqlite_utils.Database(memory=True)
    applied = migrate(db)
    assert applied == [m.__name__ for m in MIGRATIONS]
    assert migrate(db) == []  # idempotent
    assert {"studies", "cases", "readers", "sessions", "trials", "responses", "events"} <= set(db.table_names())
    assert "survey_note" in db["readers"].columns_dict  # m003 ran after m001
    assert [r["name"] for r in db["_ctstudio_migrations"].rows] == applied


def test_an_old_database_is_upgraded(monkeypatch):
    db = sqlite_utils.Database(memory=True)
    monkeypatch.setattr(store_mod, "MIGRATIONS", MIGRATIONS[:1])
    assert migrate(db) == ["m001_initial"]
    assert "survey_note" not in db["readers"].columns_dict
    monkeypatch.setattr(store_mod, "MIGRATIONS", MIGRATIONS)
    assert migrate(db) == [m.__name__ for m in MIGRATIONS[1:]]
    assert "survey_note" in db["readers"].columns_dict


def test_events_are_append_only():
    st = Store(":memory:")
    st.log_event("hello", None, x=1)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        st.conn.execute("UPDATE events SET kind = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        st.conn.execute("DELETE FROM events")
    assert [e["kind"] for e in st.events()] == ["hello"]


@pytest.fixture
def spec(tmp_path):
    return load_spec(write_phantom_study(tmp_path / "study", n_real=3, n_synthetic=3, trials=4))


def test_a_trial_cannot_be_answered_twice_and_the_log_records_answers(spec, tmp_path):
    st = Store(tmp_path / "s.db")
    sess = ReaderSession.open(st, spec, "r1", prefetch=False)
    sess.begin()
    trial = sess.current
    sess.answer(choice="left")
    with pytest.raises(InputError, match="already answered"):
        st.record_response(sess.session_id, trial, choice="right", correct=0)
    kinds = [e["kind"] for e in st.events(sess.session_id)]
    assert kinds[:3] == ["session_started", "trials_begin", "answer"]
    assert st.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_store_hands_out_tokens_not_paths(spec, tmp_path):
    st = Store(tmp_path / "s.db")
    sess = ReaderSession.open(st, spec, "r1", prefetch=False)
    row = sess.current
    for tok in (row["left_token"], row["right_token"]):
        assert "/" not in tok and "case" not in tok and "real" not in tok and "synth" not in tok
    # the trial row carries no path or class word the screen could show
    assert not any(isinstance(v, str) and ("nii" in v or "/" in v) for v in row.values())


def test_a_non_database_file_is_refused(tmp_path):
    f = tmp_path / "notes.db"
    f.write_text("hello")
    with pytest.raises(InputError, match="not a SQLite study database"):
        Store(f)


def test_two_processes_writing_one_file_lose_no_rows(spec, tmp_path):
    db = tmp_path / "shared.db"
    code = textwrap.dedent(f"""
        import sys
        from ctstudio.studies.spec import load_spec
        from ctstudio.studies.store import Store
        from ctstudio.studies.session import ReaderSession
        st = Store({str(db)!r})
        spec = load_spec({spec.path!r})
        for r in range(3):
            s = ReaderSession.open(st, spec, sys.argv[1] + str(r), prefetch=False)
            s.begin()
            while s.current is not None:
                s.answer(choice="left")
        print("done")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, encoding="utf-8") for name in ("a", "b")]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and "done" in out, err
    st = Store(db)
    assert st.conn.execute("SELECT COUNT(*) FROM studies").fetchone()[0] == 1
    assert st.conn.execute("SELECT COUNT(*) FROM sessions WHERE state = 'finished'").fetchone()[0] == 6
    assert st.conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 6 * 4
    assert st.conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'answer'").fetchone()[0] == 6 * 4


def test_each_session_and_answer_records_the_app_version_and_old_rows_stay_null(tmp_path, monkeypatch):
    """Issue 18: the study database says which ctstudio wrote each answer; answers from before stay NULL."""
    import ctstudio

    spec_path = write_phantom_study(tmp_path, trials=4)
    db = tmp_path / "s.db"
    with Store(db) as st:
        s = ReaderSession.open(st, load_spec(spec_path), "R1")
        s.begin()
        s.answer(choice="left")
    old = sqlite3.connect(db)
    old.execute("UPDATE responses SET app_version = NULL")  # as a database from before migration m005 has it
    old.commit()
    old.close()
    monkeypatch.setattr(ctstudio, "_APP_VERSION", "9.9.9+abc123")
    with Store(db) as st:
        s = ReaderSession.open(st, load_spec(spec_path), "R1")
        s.answer(choice="right")
        rows = st.responses_table()
        sessions = list(st.db["sessions"].rows)
    assert [r["app_version"] for r in rows] == [None, "9.9.9+abc123"]
    assert sessions[0]["app_version"].startswith(ctstudio.__version__)  # the session was started before
