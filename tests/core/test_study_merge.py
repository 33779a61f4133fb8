"""Studies run at several sites: two scripted sites merged into one database (same spec checked, readers
kept apart per site, merging twice adds nothing, the audit trail kept), and the analysis stratified by site."""

import shutil
import sqlite3

import numpy as np
import pytest

from ctstudio.errors import ConfigError, InputError
from ctstudio.studies import analysis
from ctstudio.studies.fixtures import write_phantom_study
from ctstudio.studies.merge import merge_databases
from ctstudio.studies.session import ReaderSession
from ctstudio.studies.spec import load_spec
from ctstudio.studies.store import Store


def read(db, spec, code, accuracy, seed, n=None, survey=None):
    """A scripted reader (oracle with the given accuracy) answering n trials (all by default) in ``db``."""
    rng = np.random.default_rng(seed)
    with Store(db) as st:
        s = ReaderSession.open(st, spec, code, survey=survey, prefetch=False)
        s.begin()
        k = 0
        while s.current is not None and (n is None or k < n):
            t = s.current
            if t["kind"] == "pair":
                right = rng.random() < accuracy
                s.answer(choice=t["real_side"] if right else ("left" if t["real_side"] == "right" else "right"))
            else:
                s.answer(scores={x: int(3 if t["cls"] == "real" or rng.random() < accuracy else 1)
                                 for x in spec.structures})
            k += 1
        s.close()


def counts(db):
    con = sqlite3.connect(db)
    try:
        return {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("studies", "cases", "readers", "sessions", "trials", "responses", "events")}
    finally:
        con.close()


SITE_A = (("R1", 0.9), ("R2", 0.6))
SITE_B = (("R1", 0.5), ("R3", 0.8))


def two_sites(tmp_path, kind="pair", copies=True, trials=6):
    """Site A and B databases of one study. ``copies``: the coordinator registered the study once and sent
    each site a copy (same case tokens); otherwise each site registered it itself (other tokens)."""
    spec_path = write_phantom_study(tmp_path / "study", kind=kind, trials=trials, n_real=3, n_synthetic=3,
                                    mode="volume" if kind == "continuity" else "axial",
                                    extra="[continuity]\nstructures = ['a', 'b']\n" if kind == "continuity" else "")
    spec = load_spec(spec_path)
    a, b = tmp_path / "A.db", tmp_path / "B.db"
    if copies:
        from ctstudio.studies.session import register_study

        with Store(tmp_path / "template.db") as st:
            register_study(st, spec)
        shutil.copyfile(tmp_path / "template.db", a)
        shutil.copyfile(tmp_path / "template.db", b)
    for db, site in ((a, "HOSP-A"), (b, "HOSP-B")):
        with Store(db) as st:
            st.set_site(site)
    for i, (code, acc) in enumerate(SITE_A):
        read(a, spec, code, acc, seed=i)
    for i, (code, acc) in enumerate(SITE_B):
        read(b, spec, code, acc, seed=10 + i)
    return spec, a, b


def test_two_sites_merge_and_the_analysis_equals_one_database_with_every_answer(tmp_path):
    spec, a, b = two_sites(tmp_path)
    merged = tmp_path / "merged.db"
    added = merge_databases(merged, [a, b])
    assert [(x.site, x.readers, x.answers) for x in added] == [("HOSP-A", 2, 12), ("HOSP-B", 2, 12)]
    with Store(merged) as st:
        rows_m = st.responses_table()
    # reader codes are kept apart per site: R1 of A and R1 of B are two readers
    assert sorted({r["reader"] for r in rows_m}) == ["HOSP-A/R1", "HOSP-A/R2", "HOSP-B/R1", "HOSP-B/R3"]
    rows_a = Store(a).responses_table()
    rows_b = Store(b).responses_table()
    assert len(rows_m) == len(rows_a) + len(rows_b) == 24
    # every answer arrives unchanged (question, case tokens, side, choice, correctness, time)
    key = ("question_index", "left_token", "right_token", "real_side", "choice", "correct", "response_ms")
    for site, rows in (("HOSP-A", rows_a), ("HOSP-B", rows_b)):
        mine = sorted((r["reader"].split("/")[1], *[r[k] for k in key]) for r in rows_m if r["site"] == site)
        assert mine == sorted((r["reader"], *[r[k] for k in key]) for r in rows)
    # pooled analysis of the merged database == the analysis of all answers in one table (site-labelled by hand)
    pooled = [{**r, "reader": f"{site}/{r['reader']}", "site": site}
              for site, rows in (("HOSP-A", rows_a), ("HOSP-B", rows_b)) for r in rows]
    res_m = analysis.analyze(rows_m, spec=spec, seed=3)
    res_p = analysis.analyze(pooled, spec=spec, seed=3)
    assert res_m["overall"] == res_p["overall"]
    assert res_m["gof"]["observed"] == res_p["gof"]["observed"]
    assert res_m["design"]["bootstrap"] == res_p["design"]["bootstrap"]
    assert res_m["per_reader"][["reader", "n", "correct"]].to_dict("records") == \
        res_p["per_reader"][["reader", "n", "correct"]].sort_values("reader").to_dict("records")
    # stratified by site: per-site rows whose counts a user can add up by hand
    sites = res_m["sites"]["table"].set_index("site")
    for site, rows in (("HOSP-A", rows_a), ("HOSP-B", rows_b)):
        assert sites.loc[site, "n_readers"] == 2
        assert sites.loc[site, "correct"] == sum(r["correct"] for r in rows)
        assert sites.loc[site, "n"] == len(rows)


def test_merging_twice_adds_nothing_and_later_answers_are_added_once(tmp_path):
    spec, a, b = two_sites(tmp_path)
    read(a, spec, "R4", 0.7, seed=5, n=2)  # an unfinished session at site A
    merged = tmp_path / "merged.db"
    merge_databases(merged, [a, b])
    before = counts(merged)
    again = merge_databases(merged, [b, a, a])  # twice, in another order, a named twice
    assert counts(merged) == before
    assert all(x.answers == x.sessions == x.events == 0 for x in again)
    read(a, spec, "R4", 0.7, seed=5)  # site A's reader finishes; merged again: only the new answers arrive
    third = merge_databases(merged, [a, b])
    assert third[0].answers == 4 and third[0].updated_sessions == 1 and third[1].answers == 0
    with Store(merged) as st:
        rows = st.responses_table()
        assert len(rows) == 24 + 6
        assert {r["session_state"] for r in rows if r["reader"] == "HOSP-A/R4"} == {"finished"}
        # the audit trail: every event of both sites kept, plus one 'merged' event per source that added something
        kinds = [e["kind"] for e in st.events()]
        assert kinds.count("merged") == 3
        assert kinds.count("answer") == 30
        with pytest.raises(sqlite3.IntegrityError):  # append-only in the merged database too
            st.conn.execute("DELETE FROM events")


def test_sites_registered_separately_are_matched_by_case_content(tmp_path):
    spec, a, b = two_sites(tmp_path, copies=False)
    with Store(a) as sa, Store(b) as sb:
        assert {c["token"] for c in sa.cases(1)} != {c["token"] for c in sb.cases(1)}
    merged = tmp_path / "m.db"
    merge_databases(merged, [a, b])
    with Store(merged) as st:
        assert len(st.cases(1)) == 6  # the same six files, once
        rows = st.responses_table()
        tokens = {c["token"]: c["cls"] for c in st.cases(1)}
    assert len(rows) == 24
    for r in rows:  # every answer points at the merged study's case of the same content and class
        real = r["left_token"] if r["real_side"] == "left" else r["right_token"]
        fake = r["right_token"] if r["real_side"] == "left" else r["left_token"]
        assert tokens[real] == "real" and tokens[fake] == "synthetic"


def test_a_different_spec_or_other_cases_are_refused_and_nothing_is_written(tmp_path):
    spec, a, b = two_sites(tmp_path)
    other = write_phantom_study(tmp_path / "other", trials=5)  # same name, another question count
    c = tmp_path / "C.db"
    with Store(c) as st:
        st.set_site("HOSP-C")
    read(c, load_spec(other), "R1", 0.5, seed=1)
    merged = tmp_path / "m.db"
    merge_databases(merged, [a])
    before = counts(merged)
    with pytest.raises(ConfigError, match="different spec"):
        merge_databases(merged, [b, c])
    assert counts(merged) == before  # b was not merged either: the check comes first
    # the same spec but other case files (a site that regenerated its synthetic pool)
    shutil.copytree(tmp_path / "study", tmp_path / "site_d")
    from ctstudio.imaging.phantom import head_phantom
    from ctstudio.io import write_volume

    write_volume(head_phantom((12, 48, 48), noise_sd=10.0, seed=999), tmp_path / "site_d" / "synthetic" / "case00.nii.gz")
    d = tmp_path / "D.db"
    with Store(d) as st:
        st.set_site("HOSP-D")
    read(d, load_spec(tmp_path / "site_d" / "study.toml"), "R1", 0.5, seed=2)
    with pytest.raises(ConfigError, match="content"):
        merge_databases(merged, [d])
    assert counts(merged) == before


def test_sites_with_the_same_name_are_refused_and_the_output_is_not_a_source(tmp_path):
    spec, a, b = two_sites(tmp_path)
    with Store(b) as st:
        st.set_site("HOSP-A")
    with pytest.raises(ConfigError, match="ctstudio study site"):
        merge_databases(tmp_path / "m.db", [a, b])
    with pytest.raises(InputError, match="cannot be one of its sources"):
        merge_databases(a, [a, b])
    with Store(b) as st, pytest.raises(InputError, match="not a site name"):
        st.set_site("Hospital B/2")


def test_continuity_sites_get_per_site_tables_and_site_in_the_mixed_model(tmp_path):
    spec, a, b = two_sites(tmp_path, kind="continuity", trials=6)
    merged = tmp_path / "m.db"
    merge_databases(merged, [a, b])
    with Store(merged) as st:
        res = analysis.analyze(st.responses_table(), spec=spec, seed=0)
    tab = res["sites"]["table"]
    assert set(tab["site"]) == {"HOSP-A", "HOSP-B"}
    # per site and structure: the mean of that site's real scores, by hand
    with Store(a) as st:
        rows_a = st.responses_table()
    import json

    real_a = [json.loads(r["scores_json"])["a"] for r in rows_a if r["case_class"] == "real"]
    row = tab[(tab["site"] == "HOSP-A") & (tab["structure"] == "a")].iloc[0]
    assert row["real_mean"] == pytest.approx(np.mean(real_a))
    mm = {m["structure"]: m for m in res["design"]["mixed_model"]}
    assert "site" in mm["a"].get("formula", "")
