"""The study database opener under fuzzing: damaged files are InputErrors (regressions of what bench/fuzz.py
found), and a fixed-seed set of mutated databases each opens or raises a ctstudio error."""

import sqlite3

import pytest

from ctstudio.errors import InputError
from ctstudio.studies.fixtures import write_phantom_study
from ctstudio.studies.session import ReaderSession
from ctstudio.studies.spec import load_spec
from ctstudio.studies.store import Store


@pytest.fixture
def db(tmp_path):
    spec = write_phantom_study(tmp_path / "s", n_real=2, n_synthetic=2, shape=(4, 16, 16), trials=3, size=16)
    path = tmp_path / "study.db"
    st = Store(path)
    s = ReaderSession.open(st, load_spec(spec), "R1", prefetch=False)
    s.begin()
    s.answer(choice="left")
    st.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    st.close()
    return path


def test_a_database_with_a_damaged_page_is_an_input_error(db):
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) >= 3 * page
    data[page + 0: page + 8] = b"\xff" * 8  # the b-tree header of page 2: sqlite says "malformed"
    db.write_bytes(bytes(data))
    with pytest.raises(InputError, match="study database is damaged"):
        Store(db)


def test_a_database_missing_a_table_is_an_input_error(db):
    con = sqlite3.connect(db)
    con.execute("DROP TABLE responses")
    con.commit()
    con.close()
    with pytest.raises(InputError, match="responses are missing"):
        Store(db)


@pytest.mark.parametrize("value", [None, "not json", "[]", '{"name": 5}'])
def test_a_damaged_stored_spec_is_an_input_error(db, value):
    con = sqlite3.connect(db)
    con.execute("UPDATE studies SET spec_json = ?", [value])
    con.commit()
    con.close()
    st = Store(db)
    try:
        (study,) = st.studies()
        with pytest.raises(InputError, match="stored spec is damaged"):
            st.spec_of(study["id"])
    finally:
        st.close()


def test_text_that_is_not_utf8_is_an_input_error_naming_the_database(tmp_path):
    """Found by bench/fuzz.py: invalid UTF-8 in a text column raised sqlite3.OperationalError / UnicodeDecodeError."""
    import sqlite3

    from ctstudio.errors import InputError
    from ctstudio.studies.store import Store

    db = tmp_path / "s.db"
    Store(db).close()
    raw = sqlite3.connect(db)
    tables = [r[0] for r in raw.execute("select name from sqlite_master where type='table'")]
    table = "studies" if "studies" in tables else tables[0]
    cols = [r[1] for r in raw.execute(f"pragma table_info({table})") if r[2].upper() == "TEXT"]
    raw.execute(f"insert into {table} ({cols[0]}) values (cast(x'ff41' as text))") if cols else None
    raw.commit()
    raw.close()
    store = Store(db)
    with pytest.raises(InputError, match="not UTF-8") as info:
        store.db.execute(f"select * from {table}").fetchall()
    assert str(db) in str(info.value)
