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


# -- per-reader binomial columns, pooling and the study summary pinned independently (issue 11) ------------
def test_per_reader_binomial_columns_match_scipy_binomtest():
    """Both p-value columns against scipy.stats.binomtest, including readers below chance, where the
    two-sided p is not the one-sided one."""
    data = {"hi": [1] * 9 + [0], "mid": [1] * 5 + [0] * 5, "lo": [1] * 2 + [0] * 8, "zero": [0] * 10,
            "six": [1] * 6 + [0] * 4}
    rd = analysis.per_reader(_rows(data)).set_index("reader")
    for reader, answers in data.items():
        k, n = sum(answers), len(answers)
        assert rd.loc[reader, "n"] == n and rd.loc[reader, "correct"] == k
        assert rd.loc[reader, "success_rate"] == pytest.approx(k / n)
        two = stats.binomtest(k, n, 0.5, alternative="two-sided").pvalue
        greater = stats.binomtest(k, n, 0.5, alternative="greater").pvalue
        assert rd.loc[reader, "p_binom_two_sided"] == pytest.approx(two, abs=1e-12)
        assert rd.loc[reader, "p_binom_greater"] == pytest.approx(greater, abs=1e-12)
    # by hand: 2/10 -> two-sided 2 * 56/1024, one-sided P(X >= 2) = 1013/1024; 5/10 -> two-sided 1
    assert rd.loc["lo", "p_binom_two_sided"] == pytest.approx(112 / 1024)
    assert rd.loc["lo", "p_binom_greater"] == pytest.approx(1013 / 1024)
    assert rd.loc["mid", "p_binom_two_sided"] == pytest.approx(1.0)
    assert rd.loc["zero", "p_binom_two_sided"] == pytest.approx(2 / 1024)
    assert rd.loc["six", "median_response_ms"] == pytest.approx(1005.5)  # questions 1..10 -> 1001..1010 ms


def test_binomial_functions_by_hand_below_chance():
    assert analysis.binom_p_two_sided(1, 10) == pytest.approx(22 / 1024)
    assert analysis.binom_p_two_sided(5, 10) == pytest.approx(1.0)
    assert analysis.binom_p_greater(1, 10) == pytest.approx(1023 / 1024)
    assert analysis.binom_p_greater(3, 4, p=0.25) == pytest.approx(4 * 0.25 ** 3 * 0.75 + 0.25 ** 4)


def test_pool_bins_by_hand_for_twenty_readers():
    """20 x Binomial(10, 1/2): tails pool to [0..4] (7.54) and [6..10] (7.54); the middle bin 5 (4.92)
    then joins its smaller neighbour, the left one on a tie."""
    expected = 20 * stats.binom.pmf(np.arange(11), 10, 0.5)
    assert analysis.pool_bins(expected, 5.0) == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]
    # a lower threshold leaves more bins: 2.34 + 0.88 ... by hand with min 2: [0..3] 3.43, 4, 5, 6, [7..10]
    assert analysis.pool_bins(expected, 2.0) == [[0, 1, 2, 3], [4], [5], [6], [7, 8, 9, 10]]
    # an interior sparse bin joins the smaller neighbour
    assert analysis.pool_bins(np.array([6.0, 1.0, 9.0, 6.0]), 5.0) == [[0, 1], [2], [3]]
    assert analysis.pool_bins(np.array([6.0, 9.0, 1.0, 6.0]), 5.0) == [[0], [1], [2, 3]]
    assert analysis.pool_bins(np.array([1.0, 1.0]), 5.0) == [[0, 1]]


def test_chi_square_with_everything_pooled_falls_back_to_monte_carlo():
    res = analysis.chi_square_gof_binomial([5, 6, 4], 10, n_mc=500, seed=0)
    assert res["pooled_bins"] == [[0, 10]] and res["dof"] == 0
    assert res["statistic"] is None and res["p_value"] is None
    assert res["expected_counts_small"] is True and res["recommended"] == "monte_carlo"
    assert res["observed"] == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0] and res["n_readers"] == 3
    assert res["expected"][5] == pytest.approx(3 * 252 / 1024, abs=1e-4)
    assert res["mc_draws"] == 500 and 0 < res["mc_p_value"] <= 1


def test_chi_square_statistic_by_hand():
    """40 readers of n = 2: expected 10, 20, 10; observed 14, 16, 10 -> X2 = 1.6 + 0.8 + 0 = 2.4, 2 dof."""
    res = analysis.chi_square_gof_binomial([0] * 14 + [1] * 16 + [2] * 10, 2, n_mc=200)
    assert res["pooled_bins"] == [[0, 0], [1, 1], [2, 2]]
    assert res["statistic"] == pytest.approx(2.4) and res["dof"] == 2
    assert res["p_value"] == pytest.approx(np.exp(-1.2))  # chi2(2) survival = exp(-x/2)
    assert res["mc_statistic"] == pytest.approx(2.4)
    assert res["recommended"] == "chi_square" and res["expected_counts_small"] is False


def test_analyze_pair_study_summary_and_unfinished_readers():
    data = {"a": [1] * 8 + [0] * 2, "b": [1] * 6 + [0] * 4, "c": [1, 1, 0]}  # c stopped after 3 questions
    res = analysis.analyze(_rows(data))
    assert res["kind"] == "pair" and res["n_responses"] == 23 and res["n_readers"] == 3
    assert res["overall"] == {"n": 23, "correct": 16, "success_rate": pytest.approx(16 / 23)}
    assert res["gof"]["n_per_reader"] == 10 and res["gof"]["n_readers"] == 2
    assert "1 reader(s) with an unfinished session (n != 10)" in res["gof"]["note"]
    full = analysis.analyze(_rows({"a": [1] * 8 + [0] * 2, "b": [1] * 6 + [0] * 4}))
    assert "note" not in full["gof"]
    assert analysis.analyze([]) == {"kind": None, "n_responses": 0, "note": "no responses recorded yet"}


def test_question_index_test_needs_several_readers_and_variation():
    one = analysis.question_index_test(_rows({"a": [1, 0, 1, 0]}))
    assert one["kruskal_h"] is None and one["conover"] is None and "more answers than indices" in one["note"]
    same = analysis.question_index_test(_rows({"a": [1, 1, 1], "b": [1, 1, 1]}))
    assert same["kruskal_p"] is None and same["success_by_question"] == {1: 1.0, 2: 1.0, 3: 1.0}
    two = analysis.question_index_test(_rows({"a": [1, 0, 1], "b": [1, 1, 0], "c": [0, 1, 1]}))
    assert two["n_by_question"] == {1: 3, 2: 3, 3: 3}
    assert two["success_by_question"] == {1: pytest.approx(2 / 3), 2: pytest.approx(2 / 3), 3: pytest.approx(2 / 3)}
    h, p = stats.kruskal([1, 1, 0], [0, 1, 1], [1, 0, 1])
    assert two["kruskal_h"] == pytest.approx(h) and two["kruskal_p"] == pytest.approx(p)
    assert two["conover"].shape == (3, 3)


def test_group_table_and_stratified_tests_edge_cases():
    data = {"a": [1] * 7 + [0] * 3, "b": [1] * 7 + [0] * 3, "c": [1] * 4 + [0] * 6}
    survey = {"a": {"specialty": "neuro", "screening": 1, "radiologist": 1},
              "b": {"specialty": "chest", "screening": 1, "radiologist": 1},
              "c": {"specialty": "body", "screening": 0, "radiologist": 1}}
    rd = analysis.per_reader(_rows(data, survey))
    g = analysis.group_table(rd).set_index(["stratum", "group"])
    assert g.loc[("all", "all readers"), "sd_success"] == pytest.approx(np.std([0.7, 0.7, 0.4], ddof=1))
    assert g.loc[("screening", "works in screening"), "sd_success"] == 0.0  # identical rates: exactly 0
    assert np.isnan(g.loc[("screening", "no screening"), "sd_success"])     # one reader: no SD
    assert g.loc[("specialty", "body"), "mean_success"] == pytest.approx(0.4)
    assert ("certification", "neither") not in g.index  # nobody answered the certification questions
    strat = {s["stratum"]: s for s in analysis.stratified_tests(rd)}
    assert strat["radiologist"]["test"] is None and strat["radiologist"]["note"] == "fewer than two groups"
    assert strat["certification"]["groups"] == {}
    h, p = stats.kruskal([0.7], [0.7], [0.4])
    assert strat["specialty"]["test"] == "Kruskal-Wallis" and strat["specialty"]["p_value"] == pytest.approx(p)
    u, p2 = stats.mannwhitneyu([0.4], [0.7, 0.7], alternative="two-sided")  # groups in sorted order: 0, 1
    assert strat["screening"]["statistic"] == pytest.approx(u) and strat["screening"]["p_value"] == pytest.approx(p2)
    flat = analysis.per_reader(_rows({"a": [1, 0], "b": [0, 1], "c": [1, 0]},
                                     {"a": {"specialty": "x"}, "b": {"specialty": "y"}, "c": {"specialty": "z"}}))
    rec = {s["stratum"]: s for s in analysis.stratified_tests(flat)}["specialty"]
    assert rec["test"] == "Kruskal-Wallis" and rec["p_value"] is None and rec["note"] == "all values identical"


def test_continuity_long_and_table_by_hand():
    rows = _cont_rows([("x", "k1", "real", {"skull": 3, "orbits": 2}), ("x", "k2", "real", {"skull": 2}),
                       ("x", "k3", "synthetic", {"skull": 1, "orbits": 2}), ("y", "k3", "synthetic", {"skull": 2})])
    rows.append({"study": "c", "kind": "continuity", "reader": "y", "case_token": "k9", "case_class": "real",
                 "scores_json": None, "question_index": 9})  # skipped: no scores yet
    rows.append({"study": "c", "kind": "pair", "reader": "y", "case_token": "k8", "case_class": "real",
                 "scores_json": json.dumps({"skull": 3}), "question_index": 10})  # skipped: not continuity
    long_df = analysis.continuity_long(rows)
    assert len(long_df) == 6 and set(long_df["case"]) == {"k1", "k2", "k3"}
    t = analysis.continuity_table(long_df).set_index("structure")
    assert list(t.index) == ["skull", "orbits"]  # order of first appearance
    assert t.loc["skull", "n_real"] == 2 and t.loc["skull", "real_mean"] == 2.5
    assert t.loc["skull", "real_sd"] == pytest.approx(np.std([3, 2], ddof=1))
    assert t.loc["skull", "synthetic_mean"] == 1.5 and t.loc["skull", "n_synthetic"] == 2
    assert t.loc["skull", "synthetic_sd"] == pytest.approx(np.std([1, 2], ddof=1))
    u, p = stats.mannwhitneyu([3, 2], [1, 2], alternative="two-sided")
    assert t.loc["skull", "mannwhitney_u"] == pytest.approx(u) and t.loc["skull", "p_value"] == pytest.approx(p)
    # orbits: one real, one synthetic, both 2 -> no test, no SD
    assert np.isnan(t.loc["orbits", "p_value"]) and np.isnan(t.loc["orbits", "real_sd"])
    assert t.loc["orbits", "real_mean"] == 2 and t.loc["orbits", "synthetic_mean"] == 2
    only = analysis.continuity_table(long_df, ["orbits"])
    assert list(only["structure"]) == ["orbits"]
    none = analysis.continuity_table(long_df[long_df.case_class == "real"], ["skull"]).iloc[0]
    assert none["n_synthetic"] == 0 and np.isnan(none["synthetic_mean"]) and np.isnan(none["p_value"])


def test_cohen_kappa_by_hand_and_agreement_edge_cases():
    def long(recs):
        return pd.DataFrame(recs, columns=["reader", "case", "case_class", "structure", "score"])

    # 4 items, x = 1 2 3 3, y = 1 2 3 1: po = 3/4, pe = (1*2 + 1*1 + 2*1)/16 = 5/16 -> kappa = 7/11
    recs = [(r, f"i{i}", "real", "s", v) for r, vals in (("x", [1, 2, 3, 3]), ("y", [1, 2, 3, 1]))
            for i, v in enumerate(vals)]
    ag = analysis.agreement(long(recs))
    assert ag["method"] == "cohen" and ag["n_items"] == 4 and ag["kappa"] == pytest.approx(7 / 11)
    assert ag["readers"] == ["x", "y"]
    # a reader who saw i0 twice (1 and 3) counts with the mean, 2 -> now disagrees with y's 1 on i0
    twice = analysis.agreement(long(recs + [("x", "i0", "real", "s", 3)]))
    # x = 2 2 3 3, y = 1 2 3 1: po = 2/4, pe = (0*2 + 2*1 + 2*1)/16 = 1/4 -> kappa = 1/3
    assert twice["kappa"] == pytest.approx(1 / 3)
    assert analysis.agreement(long([]))["method"] is None
    alone = analysis.agreement(long([("x", "i0", "real", "s", 1), ("x", "i1", "real", "s", 2)]))
    assert alone["kappa"] is None and alone["n_items"] == 0
    apart = analysis.agreement(long([("x", "i0", "real", "s", 1), ("y", "i1", "real", "s", 2)]))
    assert apart["kappa"] is None and "two or more readers" in apart["note"]
    one_shared = analysis.agreement(long([("x", "i0", "real", "s", 1), ("y", "i0", "real", "s", 1),
                                          ("y", "i1", "real", "s", 2)]))
    assert one_shared["method"] == "cohen" and one_shared["kappa"] is None and one_shared["n_items"] == 1


def test_fleiss_uses_the_most_common_number_of_raters():
    """Items rated by 3 readers are the most common; the one item rated by 2 is left out."""
    recs = [("r1", "i1", "s", 1), ("r2", "i1", "s", 1), ("r3", "i1", "s", 1),
            ("r1", "i2", "s", 2), ("r2", "i2", "s", 2), ("r3", "i2", "s", 2),
            ("r1", "i3", "s", 1), ("r2", "i3", "s", 2), ("r3", "i3", "s", 2),
            ("r1", "i4", "s", 2), ("r2", "i4", "s", 2), ("r3", "i4", "s", 2),
            ("r1", "i5", "s", 1), ("r2", "i5", "s", 3)]
    long_df = pd.DataFrame([(r, c, "real", s, v) for r, c, s, v in recs],
                           columns=["reader", "case", "case_class", "structure", "score"])
    ag = analysis.agreement(long_df)
    assert ag["method"] == "fleiss" and ag["raters_per_item"] == 3 and ag["n_items"] == 4
    assert ag["kappa"] == pytest.approx(0.625)  # the hand value of test_fleiss_kappa_hand_value


def test_monte_carlo_p_value_agrees_with_the_exact_multinomial_test():
    """40 readers of n = 2 (bins 0, 1, 2 with p = 1/4, 1/2, 1/4): enumerate every outcome (a, b, c)."""
    from math import comb

    succ = [0] * 14 + [1] * 16 + [2] * 10
    res = analysis.chi_square_gof_binomial(succ, 2, n_mc=4000, seed=3)
    exp = np.array([10.0, 20.0, 10.0])
    p_exact = 0.0
    for a in range(41):
        for b in range(41 - a):
            c = 40 - a - b
            if np.sum((np.array([a, b, c]) - exp) ** 2 / exp) >= 2.4 - 1e-9:
                p_exact += comb(40, a) * comb(40 - a, b) * 0.25 ** a * 0.5 ** b * 0.25 ** c
    assert 0.2 < p_exact < 0.4
    assert res["mc_p_value"] == pytest.approx(p_exact, abs=0.03)
    # success counts given as floats (a pandas column) are counts all the same
    as_float = analysis.chi_square_gof_binomial([float(s) for s in succ], 2, n_mc=200)
    assert as_float["observed"] == [14, 16, 10] and as_float["statistic"] == pytest.approx(2.4)
    # the study summary uses 20000 draws
    assert analysis.analyze(_rows({"a": [1, 0], "b": [0, 0]}))["gof"]["mc_draws"] == 20000


def test_expected_counts_of_exactly_five_are_enough_for_the_chi_square():
    """10 readers of n = 1: expected 5 and 5 (not small); 6 right -> X2 = 1/5 + 1/5 = 0.4 on 1 dof."""
    res = analysis.chi_square_gof_binomial([1] * 6 + [0] * 4, 1, n_mc=200)
    assert res["pooled_expected"] == [5.0, 5.0] and res["expected_counts_small"] is False
    assert res["recommended"] == "chi_square"
    assert res["statistic"] == pytest.approx(0.4) and res["p_value"] == pytest.approx(stats.chi2.sf(0.4, 1))


def test_per_reader_rows_are_sorted_by_reader():
    rd = analysis.per_reader(_rows({"zed": [1, 0], "amy": [1, 1], "kim": [0, 0]}))
    assert list(rd["reader"]) == ["amy", "kim", "zed"] and list(rd["correct"]) == [2, 0, 1]


def test_question_index_test_with_two_questions():
    data = {"a": [1, 0], "b": [1, 0], "c": [1, 1], "d": [0, 0]}
    res = analysis.question_index_test(_rows(data))
    h, p = stats.kruskal([1, 1, 1, 0], [0, 0, 1, 0])
    assert res["kruskal_h"] == pytest.approx(h) and res["kruskal_p"] == pytest.approx(p)


def test_fleiss_on_items_scored_by_two_of_three_readers():
    """Most items carry two scores: Fleiss' kappa on those (by hand), the item with three left out."""
    recs = [("r1", "i1", 1), ("r2", "i1", 1), ("r2", "i2", 2), ("r3", "i2", 2), ("r1", "i3", 1), ("r3", "i3", 2),
            ("r1", "i4", 2), ("r2", "i4", 2), ("r1", "i5", 1), ("r2", "i5", 1), ("r3", "i5", 3)]
    long_df = pd.DataFrame([(r, c, "real", "s", v) for r, c, v in recs],
                           columns=["reader", "case", "case_class", "structure", "score"])
    ag = analysis.agreement(long_df)
    assert ag["method"] == "fleiss" and ag["raters_per_item"] == 2 and ag["n_items"] == 4
    # P_i = 1, 1, 0, 1 -> P_bar = 3/4; p_j = 3/8, 5/8, 0 -> P_e = 34/64; kappa = (3/4 - 17/32)/(1 - 17/32) = 7/15
    assert ag["kappa"] == pytest.approx(7 / 15)


def test_analyze_a_study_with_a_single_response():
    res = analysis.analyze(_rows({"a": [1]}))
    assert res["kind"] == "pair" and res["study"] == "s" and res["n_responses"] == 1
    assert res["overall"] == {"n": 1, "correct": 1, "success_rate": 1.0}
    cont = analysis.analyze(_cont_rows([("x", "k1", "real", {"skull": 3})]))
    assert cont["kind"] == "continuity" and cont["study"] == "c" and cont["agreement"]["kappa"] is None


def test_two_groups_with_a_sparse_right_tail_are_pooled_and_two_shared_items_give_a_kappa():
    assert analysis.pool_bins(np.array([6.0, 1.0]), 5.0) == [[0, 1]]
    long_df = pd.DataFrame([("x", "i0", "real", "s", 1), ("y", "i0", "real", "s", 1),
                            ("x", "i1", "real", "s", 2), ("y", "i1", "real", "s", 2)],
                           columns=["reader", "case", "case_class", "structure", "score"])
    ag = analysis.agreement(long_df)  # po = 1, pe = 1/2 -> kappa = 1
    assert ag["method"] == "cohen" and ag["n_items"] == 2 and ag["kappa"] == pytest.approx(1.0)
