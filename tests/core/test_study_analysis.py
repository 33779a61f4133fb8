"""Statistics cross-checked against scipy, scikit-posthocs, scikit-learn, statsmodels and hand values."""

import json

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from scipy import stats

from ctstudio.studies import analysis


def test_binomial_hand_values():
    assert analysis.binom_p_greater(9, 10) == pytest.approx(11 / 1024, abs=1e-12)  # 0.0107
    assert round(analysis.binom_p_greater(9, 10), 4) == 0.0107
    assert analysis.binom_p_greater(10, 10) == pytest.approx(1 / 1024)
    assert analysis.binom_p_greater(0, 10) == pytest.approx(1.0)
    assert analysis.binom_p_two_sided(9, 10) == pytest.approx(22 / 1024)


def test_pooling_of_sparse_bins():
    expected = 20 * stats.binom.pmf(np.arange(11), 10, 0.5)
    groups = analysis.pool_bins(expected, 5.0)
    totals = [expected[g].sum() for g in groups]
    assert all(t >= 5 for t in totals)
    assert sorted(i for g in groups for i in g) == list(range(11))  # every bin once, contiguous
    # by hand: 20 readers -> [0..4] 7.54, [5] 4.92 < 5 ... pooled from the tails inward
    assert groups[0][0] == 0 and groups[-1][-1] == 10 and len(groups) >= 2


def test_chi_square_gof_matches_scipy_on_the_pooled_bins():
    succ = [5, 6, 4, 5, 7, 3, 5, 6, 4, 5, 9, 8, 2, 5, 6, 5, 4, 6, 5, 5] * 3  # 60 readers
    res = analysis.chi_square_gof_binomial(succ, 10, n_mc=2000, seed=1)
    obs = np.array(res["pooled_observed"])
    exp = np.array(res["pooled_expected"])
    ref = stats.chisquare(obs, exp * obs.sum() / exp.sum())
    assert res["statistic"] == pytest.approx(ref.statistic, rel=1e-3)
    assert res["p_value"] == pytest.approx(ref.pvalue, rel=1e-3)
    assert res["dof"] == len(obs) - 1
    assert min(exp) >= 5 and res["recommended"] == "chi_square"


def test_monte_carlo_agrees_with_the_exact_test_for_few_readers():
    # 3 readers, each 10/10: under H0 the chance that the X2 statistic is at least as big
    succ = [10, 10, 10]
    res = analysis.chi_square_gof_binomial(succ, 10, n_mc=20000, seed=0)
    assert res["recommended"] == "monte_carlo" and res["expected_counts_small"]
    # exact: enumerate all 11^3 outcomes
    pmf = stats.binom.pmf(np.arange(11), 10, 0.5)
    exp = 3 * pmf
    obs_stat = res["mc_statistic"]
    p_exact = 0.0
    for a in range(11):
        for b in range(11):
            for c in range(11):
                counts = np.bincount([a, b, c], minlength=11)
                if np.sum((counts - exp) ** 2 / exp) >= obs_stat - 1e-9:
                    p_exact += pmf[a] * pmf[b] * pmf[c]
    assert res["mc_p_value"] == pytest.approx(p_exact, abs=0.005)
    assert res["mc_p_value"] < 0.001


def _rows(correct_by_reader, survey=None):
    rows = []
    for reader, correct in correct_by_reader.items():
        for q, c in enumerate(correct, 1):
            r = {"study": "s", "kind": "pair", "reader": reader, "question_index": q, "correct": c,
                 "response_ms": 1000.0 + q, "case_token": None, "case_class": None, "scores_json": None,
                 "radiologist": None, "board_certified": None, "trainee": None, "specialty": None,
                 "screening": None, "years_experience": None}
            r.update((survey or {}).get(reader, {}))
            rows.append(r)
    return rows


def test_kruskal_and_conover_match_scipy_and_scikit_posthocs():
    rng = np.random.default_rng(0)
    data = {f"r{i}": list((rng.random(10) < np.linspace(0.3, 0.9, 10)).astype(int)) for i in range(12)}
    res = analysis.question_index_test(_rows(data))
    df = pd.DataFrame([(q + 1, c) for r in data.values() for q, c in enumerate(r)], columns=["q", "c"])
    h, p = stats.kruskal(*[g["c"].to_numpy(float) for _, g in df.groupby("q")])
    assert res["kruskal_h"] == pytest.approx(h) and res["kruskal_p"] == pytest.approx(p)
    ref = sp.posthoc_conover(df.astype(float), val_col="c", group_col="q", p_adjust="holm")
    np.testing.assert_allclose(res["conover"].to_numpy(), ref.to_numpy())
    assert res["success_by_question"][1] == pytest.approx(df[df.q == 1]["c"].mean())


def test_per_reader_groups_and_stratified_tests():
    data = {"a": [1] * 9 + [0], "b": [1] * 8 + [0] * 2, "c": [1] * 5 + [0] * 5, "d": [1] * 4 + [0] * 6}
    survey = {"a": {"radiologist": 1, "board_certified": 1, "specialty": "neuro", "screening": 1},
              "b": {"radiologist": 1, "board_certified": 0, "trainee": 1, "specialty": "neuro", "screening": 0},
              "c": {"radiologist": 0, "board_certified": 0, "specialty": "none", "screening": 0},
              "d": {"radiologist": 0, "board_certified": 0, "specialty": "none", "screening": 0}}
    res = analysis.analyze(_rows(data, survey))
    rd = res["per_reader"].set_index("reader")
    assert rd.loc["a", "correct"] == 9 and rd.loc["a", "p_binom_greater"] == pytest.approx(0.0107421875)
    g = res["groups"].set_index(["stratum", "group"])
    assert g.loc[("radiologist", "radiologist"), "mean_success"] == pytest.approx(0.85)
    assert g.loc[("radiologist", "radiologist"), "sd_success"] == pytest.approx(np.std([0.9, 0.8], ddof=1))
    assert g.loc[("all", "all readers"), "n_readers"] == 4
    strat = {s["stratum"]: s for s in res["stratified"]}
    u, p = stats.mannwhitneyu([0.5, 0.4], [0.9, 0.8], alternative="two-sided")
    assert strat["radiologist"]["p_value"] == pytest.approx(p)
    assert res["overall"]["correct"] == 26
    cert = g.loc["certification"]
    assert cert.loc["board-certified", "mean_success"] == pytest.approx(0.9)
    assert cert.loc["trainee", "mean_success"] == pytest.approx(0.8)
    assert cert.loc["neither", "n_readers"] == 2
    h, p3 = stats.kruskal([0.9], [0.8], [0.5, 0.4])
    assert strat["certification"]["test"] == "Kruskal-Wallis" and strat["certification"]["p_value"] == pytest.approx(p3)


def _cont_rows(scores):
    """scores: list of (reader, case, cls, {structure: score})."""
    return [{"study": "c", "kind": "continuity", "reader": r, "case_token": c, "case_class": cls,
             "scores_json": json.dumps(s), "question_index": i} for i, (r, c, cls, s) in enumerate(scores)]


def test_continuity_table_and_kappas():
    rows = []
    rng = np.random.default_rng(3)
    for reader in ("x", "y", "z"):
        for case in range(6):
            cls = "real" if case < 3 else "synthetic"
            base = 3 if cls == "real" else 1
            s = {"skull": int(np.clip(base + rng.integers(-1, 2), 1, 3)), "ventricles": base}
            rows.append((reader, f"k{case}", cls, s))
    long_df = analysis.continuity_long(_cont_rows(rows))
    t = analysis.continuity_table(long_df, ["skull", "ventricles"]).set_index("structure")
    real = long_df[(long_df.structure == "skull") & (long_df.case_class == "real")]["score"]
    fake = long_df[(long_df.structure == "skull") & (long_df.case_class == "synthetic")]["score"]
    assert t.loc["skull", "real_mean"] == pytest.approx(real.mean())
    assert t.loc["skull", "p_value"] == pytest.approx(stats.mannwhitneyu(real, fake).pvalue)
    assert t.loc["ventricles", "real_mean"] == 3 and t.loc["ventricles", "synthetic_mean"] == 1
    # Fleiss with statsmodels on the same table
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    wide = long_df.pivot_table(index=["case", "structure"], columns="reader", values="score")
    table, _ = aggregate_raters(wide.to_numpy().astype(int) - 1, n_cat=3)
    ag = analysis.agreement(long_df)
    assert ag["method"] == "fleiss" and ag["n_items"] == 12
    assert ag["kappa"] == pytest.approx(fleiss_kappa(table))
    # two readers: Cohen's kappa; perfect agreement on 'ventricles' + skull -> check with sklearn
    from sklearn.metrics import cohen_kappa_score

    two = long_df[long_df.reader.isin(["x", "y"])]
    ag2 = analysis.agreement(two)
    w2 = two.pivot_table(index=["case", "structure"], columns="reader", values="score")
    assert ag2["method"] == "cohen"
    assert ag2["kappa"] == pytest.approx(cohen_kappa_score(w2["x"], w2["y"], labels=[1, 2, 3]))


def test_fleiss_kappa_hand_value():
    # Fleiss (1971)-style toy: 4 items, 3 raters, 2 categories used
    long_df = pd.DataFrame(
        [("r1", "i1", "real", "s", 1), ("r2", "i1", "real", "s", 1), ("r3", "i1", "real", "s", 1),
         ("r1", "i2", "real", "s", 2), ("r2", "i2", "real", "s", 2), ("r3", "i2", "real", "s", 2),
         ("r1", "i3", "real", "s", 1), ("r2", "i3", "real", "s", 2), ("r3", "i3", "real", "s", 2),
         ("r1", "i4", "real", "s", 2), ("r2", "i4", "real", "s", 2), ("r3", "i4", "real", "s", 2)],
        columns=["reader", "case", "case_class", "structure", "score"])
    # P_i = [1, 1, 1/3, 1] -> P_bar = 5/6; p_j = [4/12, 8/12] -> P_e = 5/9; kappa = (5/6-5/9)/(1-5/9) = 0.625
    assert analysis.agreement(long_df)["kappa"] == pytest.approx(0.625)
