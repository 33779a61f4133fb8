"""Statistics that respect readers and cases, sessions reported, deliberate answers and moved studies
in the core (no Qt)."""

import shutil
import sqlite3
import time

import numpy as np
import pytest
from scipy.special import expit

from ctstudio.errors import InputError
from ctstudio.studies import analysis
from ctstudio.studies.fixtures import write_phantom_study
from ctstudio.studies.session import AlreadyFinished, ReaderSession, TooEarly
from ctstudio.studies.spec import load_spec
from ctstudio.studies.store import Store, normalise_reader_code


def test_two_way_bootstrap_covers_the_true_proportion_at_about_the_nominal_rate():
    """200 simulated crossed studies (8 readers x 12 cases, logit p = mu + reader + case effects): the
    95 % reader-and-case interval covers the population proportion in 90-99 % of them."""
    rng = np.random.default_rng(11)
    mu, sd_r, sd_c = 0.4, 0.5, 0.7
    draws = expit(mu + rng.normal(0, sd_r, 2_000_000) + rng.normal(0, sd_c, 2_000_000))
    truth = draws.mean()  # the population proportion correct, by Monte Carlo
    covered = 0
    for k in range(200):
        u = rng.normal(0, sd_r, 8)[:, None]
        v = rng.normal(0, sd_c, 12)[None, :]
        y = rng.random((8, 12)) < expit(mu + u + v)
        b = analysis.two_way_bootstrap(y.astype(float), np.ones((8, 12)), n_boot=400, seed=k)
        covered += b["ci_low"] <= truth <= b["ci_high"]
    assert 0.90 <= covered / 200 <= 0.99, covered


def test_a_one_way_interval_over_answers_would_undercover():
    """The reason for the two-way bootstrap: treating the 96 answers as independent (a binomial interval)
    covers the truth far less often than 95 % when readers and cases vary."""
    from statsmodels.stats.proportion import proportion_confint

    rng = np.random.default_rng(3)
    truth = expit(0.4 + rng.normal(0, 0.5, 2_000_000) + rng.normal(0, 0.7, 2_000_000)).mean()
    covered = 0
    for _ in range(200):
        y = rng.random((8, 12)) < expit(0.4 + rng.normal(0, 0.5, 8)[:, None] + rng.normal(0, 0.7, 12)[None, :])
        lo, hi = proportion_confint(int(y.sum()), y.size, method="wilson")
        covered += lo <= truth <= hi
    assert covered / 200 < 0.88


def test_holm_matches_a_hand_computation_and_keeps_nan():
    p = [0.01, 0.04, float("nan"), 0.03, 0.2]
    # by hand: sorted 0.01, 0.03, 0.04, 0.2 times 4, 3, 2, 1, running max, capped at 1
    assert analysis.holm(p)[:2] == pytest.approx([0.04, 0.09])
    assert np.isnan(analysis.holm(p)[2])
    assert analysis.holm(p)[3:] == pytest.approx([0.09, 0.2])


def test_continuity_analysis_leaves_not_visible_out_and_adds_holm_bootstrap_and_mixed_model(tmp_path):
    spec = load_spec(write_phantom_study(tmp_path / "c", kind="continuity", n_real=3, n_synthetic=3, trials=6,
                                         mode="volume", extra="[continuity]\nstructures = ['a', 'b']\n"))
    st = Store(tmp_path / "c.db")
    rng = np.random.default_rng(0)
    for code in ("R1", "R2", "R3"):
        s = ReaderSession.open(st, spec, code, prefetch=False)
        s.begin()
        while s.current is not None:
            real = s.current["cls"] == "real"
            s.answer(scores={"a": int(3 if real else rng.integers(1, 3)), "b": None})
        s.close()
    res = analysis.analyze(st.responses_table(), spec=spec, seed=1)
    tab = res["continuity"].set_index("structure")
    assert tab.loc["b", "n_real"] == 0 and tab.loc["b", "n_synthetic"] == 0  # not visible: left out
    assert tab.loc["a", "n_real"] + tab.loc["a", "n_synthetic"] == 18
    assert "p_holm" in tab.columns and tab.loc["a", "p_holm"] >= tab.loc["a", "p_value"]
    boot = res["design"]["bootstrap"].set_index("structure")
    assert boot.loc["a", "ci_low"] <= boot.loc["a", "difference"] <= boot.loc["a", "ci_high"]
    assert boot.loc["a", "difference"] > 0
    mm = {m["structure"]: m for m in res["design"]["mixed_model"]}
    assert mm["a"]["effect"] is not None and mm["a"]["effect"] < 0 and mm["b"]["effect"] is None


def test_sessions_unfinished_and_repeated_are_reported_and_the_csv_has_the_state(tmp_path):
    from ctstudio.studies.report import export_responses_csv

    spec = load_spec(write_phantom_study(tmp_path / "p", trials=3, allow_repeats=True))
    st = Store(tmp_path / "p.db")
    for code, n in (("R1", 3), ("R2", 1)):
        s = ReaderSession.open(st, spec, code, prefetch=False)
        s.begin()
        for _ in range(n):
            s.answer(choice="left")
        s.close()
    again = ReaderSession.open(st, spec, "R1", prefetch=False)  # allowed by the spec: a second session
    again.begin()
    again.answer(choice="right")
    rows = st.responses_table()
    summ = analysis.sessions_summary(rows)
    assert summ["n_sessions"] == 3 and summ["unfinished"] == [
        "R2 (session 2: 1/3, open)", f"R1 (session {again.session_id}: 1/3, open)"]
    assert summ["repeated"] == [f"R1 (session {again.session_id}, number 2)"]
    out = export_responses_csv(rows, tmp_path / "r.csv")
    header = out.read_text().splitlines()[0].split(",")
    assert "session_state" in header and "session_number" in header
    assert len(analysis.first_sessions(rows)) == 4


def test_a_finished_reader_is_refused_and_codes_are_normalised(tmp_path):
    spec = load_spec(write_phantom_study(tmp_path / "f", trials=2))
    st = Store(tmp_path / "f.db")
    s = ReaderSession.open(st, spec, " r9", prefetch=False)
    s.begin()
    s.answer(choice="left")
    s.answer(choice="left")
    with pytest.raises(AlreadyFinished, match="already finished"):
        ReaderSession.open(st, spec, "R9 ", prefetch=False)
    assert [r["code"] for r in st.db["readers"].rows] == ["R9"]
    for bad in ("Dr. Jane Smith", "", "R 9", "12"):
        with pytest.raises(InputError, match="reader code|needs a code"):
            normalise_reader_code(bad)
    assert normalise_reader_code("ab12") == "AB12"


def test_an_answer_before_min_view_is_impossible_in_the_core(tmp_path):
    spec = load_spec(write_phantom_study(tmp_path / "m", trials=2, min_view_ms=300))
    st = Store(tmp_path / "m.db")
    s = ReaderSession.open(st, spec, "R1", prefetch=False)
    s.begin()
    with pytest.raises(TooEarly):
        s.answer(choice="left")
    assert st.responses_table() == []
    s.focus_lost()
    time.sleep(0.4)  # away from the window: not reading time
    assert not s.can_answer()
    s.focus_gained()
    time.sleep(0.32)
    s.answer(choice="left")
    (row,) = st.responses_table()
    assert 300 <= row["response_ms"] < 600


def test_a_moved_study_resumes_with_the_same_tokens(tmp_path):
    folder = tmp_path / "a" / "study"
    spec_path = write_phantom_study(folder, trials=4)
    db = tmp_path / "s.db"
    st = Store(db)
    s = ReaderSession.open(st, load_spec(spec_path), "R1", prefetch=False)
    s.begin()
    s.answer(choice="left")
    s.close()
    tokens = {c["token"]: c["sha256"] for c in st.cases(s.study_id)}
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(folder, moved)
    shutil.rmtree(folder)
    s2 = ReaderSession.open(st, load_spec(moved / "study.toml"), "R1")
    assert s2.resumed and s2.position == 2 and s2.session_id == s.session_id
    assert {c["token"]: c["sha256"] for c in st.cases(s2.study_id)} == tokens
    assert all(str(moved) in c["path"] for c in st.cases(s2.study_id))
    s2.begin()
    assert len(s2.images()) == 2  # the images load from the new folder
    s2.close()
    assert any(e["kind"] == "cases_relocated" for e in st.events())
    # a changed case file is not taken for the old one
    (moved / "real" / "case00.nii.gz").write_bytes(b"other")
    shutil.move(str(moved), str(tmp_path / "third"))
    with pytest.raises(InputError):
        ReaderSession.open(st, load_spec(tmp_path / "third" / "study.toml"), "R1", prefetch=False)


def test_status_leaves_a_foreign_or_empty_sqlite_file_alone(tmp_path):
    from ctstudio.cli import main

    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    foreign = tmp_path / "foreign.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    for f in (empty, foreign):
        before = f.read_bytes()
        assert main(["study", "status", "--db", str(f)]) != 0
        assert f.read_bytes() == before
