"""Pair-study statistics that respect the design: the binomial GLMM (reader and case random effects), its GEE
fallback checked against a hand computation, and the goodness of fit on each reader's first complete session."""

import numpy as np
import pytest
from scipy.special import expit, logit

from ctstudio.studies import analysis
from ctstudio.studies.fixtures import write_phantom_study
from ctstudio.studies.report import summary_text
from ctstudio.studies.session import ReaderSession
from ctstudio.studies.spec import load_spec
from ctstudio.studies.store import Store


def simulated_rows(n_readers, n_cases, mu, sd_r, sd_c, seed, site_effect=0.0):
    """Rows of a crossed pair study: logit P(correct) = mu + reader + case (+/- site_effect for two sites)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0, sd_r, n_readers)
    v = rng.normal(0, sd_c, n_cases)
    rows = []
    for i in range(n_readers):
        site = "A" if i % 2 == 0 else "B"
        shift = site_effect if site == "A" else -site_effect
        for j in range(n_cases):
            y = rng.random() < expit(mu + shift + u[i] + v[j])
            rows.append({"kind": "pair", "study": "s", "reader": f"{site}/R{i}", "site": site if site_effect else "",
                         "session_id": i, "session_number": 1, "session_state": "finished", "question_index": j + 1,
                         "left_token": f"c{j}", "right_token": f"r{j}", "real_side": "right", "correct": int(y)})
    return rows


def test_gee_fallback_equals_the_hand_computed_pooled_logit_and_robust_se():
    """Intercept-only GEE with equal cluster sizes: the estimate is logit of the pooled proportion and the
    robust variance is sum_i (ybar_i - p)^2 / (n p (1 - p))^2 (the sandwich, written out by hand)."""
    rows = simulated_rows(7, 9, 0.5, 0.8, 0.3, seed=2)
    df = analysis._pair_frame(rows)
    g = analysis.pair_gee(df)
    y = np.array([r["correct"] for r in rows], float).reshape(7, 9)
    p = y.mean()
    se = np.sqrt(np.sum((y.mean(axis=1) - p) ** 2)) / (7 * p * (1 - p))
    assert g["logit"] == pytest.approx(logit(p), abs=1e-6)
    assert g["logit_se"] == pytest.approx(se, rel=1e-4)
    assert g["ci_low"] == pytest.approx(expit(logit(p) - 1.959964 * se), rel=1e-4)


def test_glmm_recovers_a_known_intercept_reader_and_case_spread():
    rows = simulated_rows(30, 40, mu=0.8, sd_r=0.6, sd_c=0.4, seed=5)
    m = analysis.pair_mixed_model(rows)
    assert m["method"].startswith("binomial GLMM")
    assert m["logit"] == pytest.approx(0.8, abs=0.3)
    assert m["ci_low"] < m["proportion"] < m["ci_high"]
    assert 0.3 < m["reader_sd"] < 1.0 and 0.15 < m["case_sd"] < 0.8
    assert "+ (1|reader) + (1|case)" in m["formula"]


def test_glmm_takes_site_as_a_factor_and_finds_a_known_site_difference():
    rows = simulated_rows(30, 30, mu=0.3, sd_r=0.3, sd_c=0.3, seed=9, site_effect=0.6)
    m = analysis.pair_mixed_model(rows)
    assert "C(site, Sum)" in m["formula"]
    (name, eff), = m["site_effects"].items()  # sum coding: site A's deviation from the average of the two
    assert "[S.A]" in name and eff == pytest.approx(0.6, abs=0.3)
    assert m["logit"] == pytest.approx(0.3, abs=0.35)


def test_when_the_glmm_cannot_be_fitted_the_gee_is_reported_and_says_why(monkeypatch):
    from statsmodels.genmod import bayes_mixed_glm

    def broken(self, *a, **k):
        raise np.linalg.LinAlgError("singular")

    monkeypatch.setattr(bayes_mixed_glm.BinomialBayesMixedGLM, "fit_vb", broken)
    m = analysis.pair_mixed_model(simulated_rows(6, 8, 0.5, 0.5, 0.5, seed=1))
    assert m["method"].startswith("GEE") and "LinAlgError" in m["note"] and "clustered by reader" in m["note"]


def test_too_little_data_gives_a_note_not_a_fit():
    rows = simulated_rows(1, 8, 0.5, 0.5, 0.5, seed=1)
    assert analysis.pair_mixed_model(rows)["proportion"] is None


def test_goodness_of_fit_uses_each_readers_first_complete_session(tmp_path):
    spec = load_spec(write_phantom_study(tmp_path / "p", trials=4, allow_repeats=True))
    with Store(tmp_path / "p.db") as st:
        plan = [("R1", ["left"] * 4), ("R2", ["right"] * 4), ("R1", ["right"] * 4), ("R3", ["left"] * 2)]
        for code, answers in plan:
            s = ReaderSession.open(st, spec, code, prefetch=False)
            s.begin()
            for a in answers:
                s.answer(choice=a)
            s.close()
        rows = st.responses_table()
    first_r1 = [r for r in rows if r["reader"] == "R1" and r["session_number"] == 1]
    r2 = [r for r in rows if r["reader"] == "R2"]
    expected = sorted([sum(r["correct"] for r in first_r1), sum(r["correct"] for r in r2)])
    res = analysis.analyze(rows, spec=spec, seed=0)
    g = res["gof"]
    assert g["n_readers"] == 2 and g["n_per_reader"] == 4
    assert sorted(k for k, c in enumerate(g["observed"]) for _ in range(c)) == expected
    assert "first complete session" in g["sessions_used"] and "R3" in g["sessions_used"]
    # the per-reader table still counts every answer of every session
    assert res["per_reader"].set_index("reader").loc["R1", "n"] == 8
    text = summary_text(res)
    assert "each reader's first complete session (2 reader(s), 4 answers each)" in text
    assert "2 other session(s) left out" in text
    assert "mixed model" in text


def test_first_complete_sessions_by_hand():
    rows = [{"reader": "R1", "session_id": 1, "session_number": 1, "session_state": "finished", "q": 1},
            {"reader": "R1", "session_id": 5, "session_number": 2, "session_state": "finished", "q": 2},
            {"reader": "R2", "session_id": 2, "session_number": 1, "session_state": "open", "q": 3}]
    assert [r["q"] for r in analysis.first_complete_sessions(rows)] == [1]
