"""Reader-study statistics (Korkinof et al., Radiology: AI 2021; Jeong et al., MICCAI 2023).

Pair studies (forced choice, "which is real"):

* per-reader success rate and exact binomial test against p = 1/2 (one-sided "better than
  chance", and two-sided);
* chi-square goodness of fit of the readers' success counts to Binomial(n, 1/2), sparse bins
  pooled from the tails inward until every expected count is >= 5 (the pooling is reported),
  with a Monte-Carlo p-value (fixed seed) as the alternative when expected counts are small;
* Kruskal-Wallis of correctness over question index (a learning effect) with Conover's post hoc
  test (scikit-posthocs, Holm-adjusted) and its p-value table;
* success rate per reader group (mean +- SD, as the paper's Table 4) and stratified comparisons
  (radiologist vs not, board-certified vs trainee, specialty, screening): Mann-Whitney U for two
  groups, Kruskal-Wallis for more.

Continuity studies: per structure, mean score of real vs synthetic cases with Mann-Whitney U
(the ASCII paper's Table 2), and inter-reader agreement (Cohen's kappa for two readers, Fleiss'
kappa for more) on cases scored by several readers.

Designs with readers and cases (every analysis below also in :func:`analyze_design`): a two-way
reader-and-case bootstrap interval of the proportion correct and of each structure's real - synthetic
continuity difference, a linear mixed model per structure (statsmodels MixedLM: reader random
intercept, case variance component), a binomial GLMM of the pair answers (reader and case as crossed
random effects; :func:`pair_mixed_model`), Holm's correction of the per-structure p-values, and a
session summary (which sessions are unfinished or repeated, and how each test treats them).

Inputs are the rows of :meth:`ctstudio.studies.store.Store.responses_table`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def _df(rows):
    import pandas as pd

    return pd.DataFrame(rows)


# -- pair studies -----------------------------------------------------------------------------------
def binom_p_greater(k: int, n: int, p: float = 0.5) -> float:
    """P(X >= k | n, p): exact one-sided binomial p-value (better than chance)."""
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, p))


def binom_p_two_sided(k: int, n: int, p: float = 0.5) -> float:
    from scipy.stats import binomtest

    return float(binomtest(k, n, p, alternative="two-sided").pvalue)


def pool_bins(expected: np.ndarray, min_expected: float = 5.0) -> list[list[int]]:
    """Group adjacent bins (indices) from both tails inward until each group's expected >= min_expected.

    Returns the groups as lists of bin indices; a single group means pooling left nothing to test.
    """
    groups = [[i] for i in range(len(expected))]
    exp = [float(e) for e in expected]

    def total(g):
        return sum(exp[i] for i in g)

    changed = True
    while changed and len(groups) > 1:
        changed = False
        # Left tail
        if total(groups[0]) < min_expected:
            groups[1] = groups[0] + groups[1]
            groups.pop(0)
            changed = True
            continue
        if len(groups) > 1 and total(groups[-1]) < min_expected:
            groups[-2] = groups[-2] + groups[-1]
            groups.pop()
            changed = True
            continue
        # An interior sparse bin (rare for a binomial): merge it with its smaller neighbour.
        for j in range(1, len(groups) - 1):
            if total(groups[j]) < min_expected:
                k = j - 1 if total(groups[j - 1]) <= total(groups[j + 1]) else j + 1
                lo, hi = sorted((j, k))
                groups[lo] = groups[lo] + groups[hi]
                groups.pop(hi)
                changed = True
                break
    return groups


def _chi2_stat(obs: np.ndarray, exp: np.ndarray) -> float:
    return float(np.sum((obs - exp) ** 2 / exp))


def chi_square_gof_binomial(successes: list[int], n: int, p: float = 0.5, min_expected: float = 5.0,
                            n_mc: int = 20000, seed: int = 0) -> dict[str, Any]:
    """Chi-square goodness of fit of per-reader success counts (each out of ``n``) to Binomial(n, p)."""
    from scipy.stats import binom, chi2

    successes = np.asarray(successes, dtype=int)
    r = len(successes)
    ks = np.arange(n + 1)
    pmf = binom.pmf(ks, n, p)
    observed = np.bincount(successes, minlength=n + 1)[: n + 1].astype(float)
    expected = r * pmf
    groups = pool_bins(expected, min_expected)
    obs_p = np.array([observed[g].sum() for g in groups])
    exp_p = np.array([expected[g].sum() for g in groups])
    out: dict[str, Any] = {
        "n_readers": r, "n_per_reader": n, "p": p,
        "observed": observed.astype(int).tolist(), "expected": [round(float(e), 4) for e in expected],
        "pooled_bins": [[int(g[0]), int(g[-1])] for g in groups],
        "pooled_observed": obs_p.astype(int).tolist(), "pooled_expected": [round(float(e), 4) for e in exp_p],
    }
    dof = len(groups) - 1
    if dof >= 1:
        stat = _chi2_stat(obs_p, exp_p)
        out.update(statistic=stat, dof=dof, p_value=float(chi2.sf(stat, dof)))
    else:
        out.update(statistic=None, dof=0, p_value=None)
    small = bool(dof < 1 or exp_p.min() < min_expected)
    out["expected_counts_small"] = small
    # Monte-Carlo alternative on the unpooled bins (exact in the limit); always reported.
    rng = np.random.default_rng(seed)
    valid = expected > 0
    stat_full = _chi2_stat(observed[valid], expected[valid])
    sims = rng.binomial(n, p, size=(n_mc, r))
    flat = (sims + (n + 1) * np.arange(n_mc)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_mc * (n + 1)).reshape(n_mc, n + 1).astype(float)
    sim_stats = np.sum((counts[:, valid] - expected[valid]) ** 2 / expected[valid], axis=1)
    out["mc_statistic"] = stat_full
    out["mc_p_value"] = float((1 + np.count_nonzero(sim_stats >= stat_full - 1e-12)) / (n_mc + 1))
    out["mc_draws"] = n_mc
    out["recommended"] = "monte_carlo" if small else "chi_square"
    return out


def per_reader(rows) -> "Any":
    """One row per (study, reader): n, correct, success rate, binomial p-values, median response time."""
    df = _df(rows)
    df = df[df["kind"] == "pair"]
    if "site" not in df.columns:
        df = df.assign(site="")
    g = df.groupby(["study", "reader"], sort=True)
    out = g.agg(site=("site", "first"), n=("correct", "size"), correct=("correct", "sum"), median_response_ms=("response_ms", "median"),
                radiologist=("radiologist", "first"), board_certified=("board_certified", "first"),
                trainee=("trainee", "first"), specialty=("specialty", "first"), screening=("screening", "first"),
                years_experience=("years_experience", "first")).reset_index()
    out["correct"] = out["correct"].astype(int)

    def _cert(row):
        if row["board_certified"] == 1:
            return "board-certified"
        if row["trainee"] == 1:
            return "trainee"
        if row["board_certified"] == 0 or row["trainee"] == 0:
            return "neither"
        return None

    out["certification"] = out.apply(_cert, axis=1) if len(out) else []
    out["success_rate"] = out["correct"] / out["n"]
    out["p_binom_greater"] = [binom_p_greater(int(k), int(n)) for k, n in zip(out["correct"], out["n"])]
    out["p_binom_two_sided"] = [binom_p_two_sided(int(k), int(n)) for k, n in zip(out["correct"], out["n"])]
    return out[[c for c in out.columns if c != "site"] + ["site"]]  # site last: the CSV's first columns stay


def question_index_test(rows) -> dict[str, Any]:
    """Kruskal-Wallis of correctness over question index, Conover post hoc (Holm) p-value table."""
    import scikit_posthocs as sp
    from scipy.stats import kruskal

    df = _df(rows)
    df = df[df["kind"] == "pair"][["question_index", "correct"]].astype(float)
    by_q = df.groupby("question_index")["correct"]
    success = by_q.mean()
    groups = [grp.to_numpy() for _, grp in by_q]
    res: dict[str, Any] = {"success_by_question": {int(k): float(v) for k, v in success.items()},
                           "n_by_question": {int(k): int(v) for k, v in by_q.size().items()}}
    if len(groups) < 2 or len(df) <= len(groups) or np.all(df["correct"].to_numpy() == df["correct"].iloc[0]):
        res.update(kruskal_h=None, kruskal_p=None, conover=None,
                   note="Kruskal-Wallis needs >= 2 question indices, more answers than indices (several "
                        "readers) and some variation in correctness")
        return res
    h, p = kruskal(*groups)
    res.update(kruskal_h=float(h), kruskal_p=float(p))
    con = sp.posthoc_conover(df, val_col="correct", group_col="question_index", p_adjust="holm")
    con.index = [int(i) for i in con.index]
    con.columns = [int(c) for c in con.columns]
    res["conover"] = con
    return res


STRATA = {
    "radiologist": ("radiologist", {1: "radiologist", 0: "non-radiologist"}),
    "certification": ("certification", None),  # board-certified / trainee / neither
    "screening": ("screening", {1: "works in screening", 0: "no screening"}),
    "specialty": ("specialty", None),
}


def _sd(x) -> float:
    """Sample SD over readers, rounded so that identical rates give exactly 0."""
    return round(float(x.std(ddof=1)), 10) if len(x) > 1 else float("nan")


def group_table(reader_df) -> "Any":
    """Success rate per reader group (mean +- SD over readers), as Korkinof et al. Table 4."""
    import pandas as pd

    recs = [{"stratum": "all", "group": "all readers", "n_readers": len(reader_df),
             "mean_success": reader_df["success_rate"].mean(),
             "sd_success": _sd(reader_df["success_rate"])}]
    for stratum, (col, labels) in STRATA.items():
        sub = reader_df.dropna(subset=[col])
        for val, grp in sub.groupby(col):
            label = labels.get(int(val), str(val)) if labels else str(val)
            recs.append({"stratum": stratum, "group": label, "n_readers": len(grp),
                         "mean_success": grp["success_rate"].mean(),
                         "sd_success": _sd(grp["success_rate"])})
    return pd.DataFrame(recs)


def stratified_tests(reader_df) -> list[dict[str, Any]]:
    """Compare per-reader success rates between groups of each stratum."""
    from scipy.stats import kruskal, mannwhitneyu

    out = []
    for stratum, (col, labels) in STRATA.items():
        sub = reader_df.dropna(subset=[col])
        groups = {(labels.get(int(v), str(v)) if labels else str(v)): g["success_rate"].to_numpy()
                  for v, g in sub.groupby(col)}
        rec: dict[str, Any] = {"stratum": stratum, "groups": {k: len(v) for k, v in groups.items()}}
        if len(groups) < 2 or any(len(v) < 1 for v in groups.values()):
            rec.update(test=None, statistic=None, p_value=None, note="fewer than two groups")
        elif len(groups) == 2:
            a, b = groups.values()
            u, p = mannwhitneyu(a, b, alternative="two-sided")
            rec.update(test="Mann-Whitney U", statistic=float(u), p_value=float(p))
        else:
            allv = np.concatenate(list(groups.values()))
            if np.all(allv == allv[0]):
                rec.update(test="Kruskal-Wallis", statistic=None, p_value=None, note="all values identical")
            else:
                h, p = kruskal(*groups.values())
                rec.update(test="Kruskal-Wallis", statistic=float(h), p_value=float(p))
        out.append(rec)
    return out


# -- continuity studies -------------------------------------------------------------------------------
def continuity_long(rows) -> "Any":
    """Long table: one row per (reader, case, structure, score)."""
    import pandas as pd

    recs = []
    for r in rows:
        if r["kind"] != "continuity" or not r.get("scores_json"):
            continue
        for s, v in json.loads(r["scores_json"]).items():
            if v is None:  # "not visible / not applicable": left out of the structure's statistics
                continue
            recs.append({"study": r["study"], "site": r.get("site") or "", "reader": r["reader"],
                         "case": r["case_token"], "case_class": r["case_class"], "structure": s, "score": int(v)})
    return pd.DataFrame(recs, columns=["study", "site", "reader", "case", "case_class", "structure", "score"])


def continuity_table(long_df, structures: list[str] | None = None) -> "Any":
    """Per structure: mean +- SD score of real and synthetic cases, Mann-Whitney U (two-sided)."""
    import pandas as pd
    from scipy.stats import mannwhitneyu

    structures = structures or list(dict.fromkeys(long_df["structure"]))
    recs = []
    for s in structures:
        sub = long_df[long_df["structure"] == s]
        real = sub[sub["case_class"] == "real"]["score"].to_numpy(float)
        fake = sub[sub["case_class"] == "synthetic"]["score"].to_numpy(float)
        rec = {"structure": s, "n_real": len(real), "real_mean": real.mean() if len(real) else math.nan,
               "real_sd": real.std(ddof=1) if len(real) > 1 else math.nan,
               "n_synthetic": len(fake), "synthetic_mean": fake.mean() if len(fake) else math.nan,
               "synthetic_sd": fake.std(ddof=1) if len(fake) > 1 else math.nan,
               "mannwhitney_u": math.nan, "p_value": math.nan}
        if len(real) and len(fake) and not (np.all(real == real[0]) and np.all(fake == real[0])):
            u, p = mannwhitneyu(real, fake, alternative="two-sided")
            rec.update(mannwhitney_u=float(u), p_value=float(p))
        recs.append(rec)
    return pd.DataFrame(recs)


def agreement(long_df, n_categories: int = 3) -> dict[str, Any]:
    """Inter-reader agreement on the (case, structure) items scored by several readers.

    Two readers: Cohen's kappa (scikit-learn). More: Fleiss' kappa (statsmodels) on the items scored
    by the most common number of readers (>= 2)."""
    if long_df.empty:
        return {"method": None, "kappa": None, "n_items": 0, "note": "no continuity scores"}
    # A reader may see a case twice (sampling with replacement): use their mean score, rounded.
    per = long_df.groupby(["case", "structure", "reader"])["score"].mean().round().astype(int).reset_index()
    wide = per.pivot_table(index=["case", "structure"], columns="reader", values="score")
    counts = wide.notna().sum(axis=1)
    readers = list(wide.columns)
    if len(readers) < 2 or counts.max() < 2:
        return {"method": None, "kappa": None, "n_items": 0, "note": "no item was scored by two or more readers"}
    if len(readers) == 2:
        from sklearn.metrics import cohen_kappa_score

        both = wide.dropna()
        a, b = both.iloc[:, 0].astype(int), both.iloc[:, 1].astype(int)
        if len(both) < 2:
            return {"method": "cohen", "kappa": None, "n_items": len(both), "note": "fewer than 2 shared items"}
        k = cohen_kappa_score(a, b, labels=list(range(1, n_categories + 1)))
        return {"method": "cohen", "kappa": None if np.isnan(k) else float(k), "n_items": len(both),
                "readers": [str(r) for r in readers]}
    from statsmodels.stats.inter_rater import fleiss_kappa

    m = int(counts[counts >= 2].mode().iloc[0])
    items = wide[counts == m]
    table = np.zeros((len(items), n_categories), dtype=int)
    for i, (_, row) in enumerate(items.iterrows()):
        for v in row.dropna().astype(int):
            table[i, v - 1] += 1
    k = fleiss_kappa(table, method="fleiss")
    return {"method": "fleiss", "kappa": None if np.isnan(k) else float(k), "n_items": len(items),
            "raters_per_item": m}


# -- everything ---------------------------------------------------------------------------------------
def analyze(rows, spec=None, seed: int = 0) -> dict[str, Any]:
    """All the statistics for the responses of one study (pair or continuity)."""
    if not rows:
        return {"kind": None, "n_responses": 0, "note": "no responses recorded yet"}
    kind = rows[0]["kind"]
    res: dict[str, Any] = {"kind": kind, "study": rows[0]["study"], "n_responses": len(rows),
                           "n_readers": len({r["reader"] for r in rows})}
    if kind == "pair":
        rd = per_reader(rows)
        res["per_reader"] = rd
        used = first_complete_sessions(rows)
        rd_gof = per_reader(used) if used else rd.iloc[0:0]
        if len(rd_gof):
            n_mode = int(np.bincount(rd_gof["n"].to_numpy()).argmax())
            same = rd_gof[rd_gof["n"] == n_mode]
        else:
            n_mode, same = int(np.bincount(rd["n"].to_numpy()).argmax()), rd_gof
        res["gof"] = chi_square_gof_binomial(same["correct"].astype(int).tolist(), n_mode, seed=seed)
        left_out = sorted(set(rd["reader"]) - set(same["reader"]))
        n_sessions = len({(r["reader"], r.get("session_id")) for r in rows})
        res["gof"]["sessions_used"] = (
            f"each reader's first complete session ({len(same)} reader(s), {n_mode} answers each); "
            f"{n_sessions - len(same)} other session(s) left out (repeated or unfinished)"
            + (f"; readers with no complete session: {', '.join(map(str, left_out))}" if left_out else ""))
        if left_out:
            res["gof"]["note"] = (f"{len(left_out)} reader(s) with an unfinished session (n != {n_mode}) left out "
                                  "of the goodness of fit")
        res["question_index"] = question_index_test(rows)
        res["groups"] = group_table(rd)
        res["stratified"] = stratified_tests(rd)
        res["overall"] = {"n": int(rd["n"].sum()), "correct": int(rd["correct"].sum()),
                          "success_rate": float(rd["correct"].sum() / rd["n"].sum())}
    else:
        long_df = continuity_long(rows)
        structures = list(spec.structures) if spec is not None else None
        res["continuity"] = continuity_table(long_df, structures)
        # the 8 structures are 8 tests: Holm's correction across them (statsmodels multipletests)
        res["continuity"]["p_holm"] = holm(res["continuity"]["p_value"].to_numpy(float)) if len(long_df) else []
        n_cat = len(spec.scale) if spec is not None else 3
        res["agreement"] = agreement(long_df, n_cat)
        res["long"] = long_df
    res["design"] = analyze_design(rows, spec, seed=seed)
    if len(sites_of(rows)) > 1:
        res["sites"] = analyze_sites(rows, spec, seed=seed)
    return res


# -- several sites ------------------------------------------------------------------------------------
def sites_of(rows) -> list[str]:
    """The sites the answers come from ('' for a database's own readers that were never merged)."""
    return sorted({r.get("site") or "" for r in rows})


def site_table(rows, spec=None, seed: int = 0, n_boot: int = 2000) -> "Any":
    """Per-site results. Pair studies: readers, answers, correct, pooled success rate with its reader-and-case
    bootstrap interval (that site's first sessions), mean +- SD of the readers' success rates. Continuity
    studies: per site and structure, the real and synthetic mean scores and their difference."""
    import pandas as pd

    recs = []
    for site in sites_of(rows):
        mine = [r for r in rows if (r.get("site") or "") == site]
        if rows[0]["kind"] == "pair":
            rd = per_reader(mine)
            b = pair_bootstrap(mine, n_boot, seed)
            recs.append({"site": site, "n_readers": len(rd), "n": int(rd["n"].sum()),
                         "correct": int(rd["correct"].sum()),
                         "success_rate": float(rd["correct"].sum() / rd["n"].sum()),
                         "ci_low": b.get("ci_low", math.nan), "ci_high": b.get("ci_high", math.nan),
                         "mean_reader_success": float(rd["success_rate"].mean()),
                         "sd_reader_success": _sd(rd["success_rate"])})
        else:
            t = continuity_table(continuity_long(mine), list(spec.structures) if spec is not None else None)
            for _, r in t.iterrows():
                recs.append({"site": site, "n_readers": len({x["reader"] for x in mine}),
                             "structure": r["structure"], "n_real": int(r["n_real"]), "real_mean": r["real_mean"],
                             "n_synthetic": int(r["n_synthetic"]), "synthetic_mean": r["synthetic_mean"],
                             "difference": r["real_mean"] - r["synthetic_mean"]})
    return pd.DataFrame(recs)


def site_test(rows) -> dict[str, Any]:
    """Do the sites differ? Pair studies: the readers' success rates compared across sites (Mann-Whitney U
    for two sites, Kruskal-Wallis for more), as the other reader strata."""
    from scipy.stats import kruskal, mannwhitneyu

    rd = per_reader(rows)
    groups = {site: g["success_rate"].to_numpy(float) for site, g in rd.groupby("site")}
    rec: dict[str, Any] = {"stratum": "site", "groups": {k: len(v) for k, v in groups.items()}}
    allv = np.concatenate(list(groups.values()))
    if len(groups) < 2 or np.all(allv == allv[0]):
        rec.update(test=None, statistic=None, p_value=None, note="fewer than two sites, or identical rates")
    elif len(groups) == 2:
        u, p = mannwhitneyu(*groups.values(), alternative="two-sided")
        rec.update(test="Mann-Whitney U", statistic=float(u), p_value=float(p))
    else:
        h, p = kruskal(*groups.values())
        rec.update(test="Kruskal-Wallis", statistic=float(h), p_value=float(p))
    return rec


def analyze_sites(rows, spec=None, seed: int = 0) -> dict[str, Any]:
    """Stratified by site: the per-site table and, for pair studies, the test of a site difference. The
    pooled analysis (the rest of :func:`analyze`) keeps every site; its mixed models take site as a fixed
    factor, and its reader labels are site-prefixed so readers of different sites are never pooled."""
    out: dict[str, Any] = {"sites": sites_of(rows), "table": site_table(rows, spec, seed)}
    if rows[0]["kind"] == "pair":
        out["test"] = site_test(rows)
    return out


# -- sessions, and statistics that respect readers and cases ----------------------------------------
def sessions_summary(rows) -> dict[str, Any]:
    """Which sessions the answers come from, and how the analysis treats them.

    A session is *finished* or *unfinished* (open or paused: the reader stopped); a reader's second or
    later session (a spec with ``allow_repeats``) is *repeated*. The per-reader table counts every
    answer; the goodness-of-fit test and the reader-and-case bootstrap use only each reader's first
    session, and the goodness of fit only finished ones (its n must be the same for every reader)."""
    seen: dict[int, dict[str, Any]] = {}
    for r in rows:
        sid = r.get("session_id", r["reader"])  # rows without sessions: one per reader
        if sid not in seen:
            seen[sid] = {"session_id": sid, "reader": r["reader"], "site": r.get("site", ""),
                         "state": r.get("session_state"), "session_number": r.get("session_number", 1),
                         "n_trials": r.get("session_trials"), "answered": 0}
        seen[sid]["answered"] += 1
    sessions = sorted(seen.values(), key=lambda d: str(d["session_id"]))
    unfinished = [s for s in sessions if s["state"] not in (None, "finished")]
    repeated = [s for s in sessions if (s["session_number"] or 1) > 1]
    return {"sessions": sessions, "n_sessions": len(sessions),
            "unfinished": [f"{s['reader']} (session {s['session_id']}: {s['answered']}/{s['n_trials']}, "
                           f"{s['state']})" for s in unfinished],
            "repeated": [f"{s['reader']} (session {s['session_id']}, number {s['session_number']})"
                         for s in repeated],
            "treatment": ("per-reader table: every answer of every session; goodness of fit: each reader's "
                          "first complete session; bootstrap and mixed models: first sessions (finished or not)")}


def first_complete_sessions(rows) -> list[dict]:
    """The rows of each reader's first *finished* session (what the goodness-of-fit test uses: every reader
    contributes one complete set of answers, so each count follows Binomial(n, 1/2) under the null).
    Rows without a session state (tests, old exports) count as one finished session per reader."""
    first: dict[Any, Any] = {}
    for r in rows:
        if r.get("session_state", "finished") not in (None, "finished"):
            continue
        key = (r.get("session_number") or 1, str(r.get("session_id", "")))
        if r["reader"] not in first or key < first[r["reader"]]:
            first[r["reader"]] = key
    return [r for r in rows if r["reader"] in first and r.get("session_state", "finished") in (None, "finished")
            and ((r.get("session_number") or 1), str(r.get("session_id", ""))) == first[r["reader"]]]


def first_sessions(rows) -> list[dict]:
    """The rows of each reader's first session (repeated sessions left out)."""
    return [r for r in rows if (r.get("session_number") or 1) == 1]


def two_way_bootstrap(num: np.ndarray, den: np.ndarray, n_boot: int = 2000, seed: int = 0,
                      level: float = 0.95) -> dict[str, Any]:
    """Reader-and-case bootstrap of a ratio of sums (e.g. the proportion correct).

    ``num``/``den`` are (readers x cases) matrices of summed outcomes and counts (0 where a reader did
    not read a case). Each draw resamples readers and cases independently with replacement (the
    two-way, "pigeonhole" bootstrap for crossed random effects: Owen 2007) and recomputes
    sum(w_r num w_c) / sum(w_r den w_c); the interval is the percentile interval. It is conservative
    (it counts the reader x case interaction twice), so 95 % intervals cover at least about 95 %."""
    num = np.asarray(num, float)
    den = np.asarray(den, float)
    rng = np.random.default_rng(seed)
    n_r, n_c = num.shape
    wr = rng.multinomial(n_r, np.full(n_r, 1.0 / n_r), size=n_boot).astype(float)
    wc = rng.multinomial(n_c, np.full(n_c, 1.0 / n_c), size=n_boot).astype(float)
    top = np.einsum("br,rc,bc->b", wr, num, wc)
    bot = np.einsum("br,rc,bc->b", wr, den, wc)
    stats = top[bot > 0] / bot[bot > 0]
    alpha = (1 - level) / 2
    est = float(num.sum() / den.sum())
    lo, hi = np.quantile(stats, [alpha, 1 - alpha]) if len(stats) else (math.nan, math.nan)
    return {"estimate": est, "ci_low": float(lo), "ci_high": float(hi), "level": level, "n_boot": int(len(stats)),
            "n_readers": n_r, "n_cases": n_c, "method": "two-way (reader x case) percentile bootstrap"}


def pair_bootstrap(rows, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Proportion correct of a pair study with a reader-and-case bootstrap interval (first sessions).
    The case of a pair is its synthetic image (what the reader must tell apart)."""
    rows = [r for r in first_sessions(rows) if r["kind"] == "pair" and r.get("correct") is not None]
    if not rows:
        return {"estimate": None, "note": "no pair answers"}
    readers = sorted({r["reader"] for r in rows})
    if any("left_token" not in r for r in rows):
        return {"estimate": None, "note": "no case tokens in the rows"}
    cases = sorted({r["left_token"] if r["real_side"] == "right" else r["right_token"] for r in rows})
    ri = {k: i for i, k in enumerate(readers)}
    ci = {k: i for i, k in enumerate(cases)}
    num = np.zeros((len(readers), len(cases)))
    den = np.zeros_like(num)
    for r in rows:
        c = r["left_token"] if r["real_side"] == "right" else r["right_token"]
        num[ri[r["reader"]], ci[c]] += int(r["correct"])
        den[ri[r["reader"]], ci[c]] += 1
    return two_way_bootstrap(num, den, n_boot, seed)


def continuity_bootstrap(long_df, structures=None, n_boot: int = 2000, seed: int = 0) -> "Any":
    """Per structure: mean score real - synthetic with a reader-and-case bootstrap interval (cases resampled
    within their class, readers across both), as the clustered counterpart of the Mann-Whitney test."""
    import pandas as pd

    structures = structures or list(dict.fromkeys(long_df["structure"]))
    rng = np.random.default_rng(seed)
    recs = []
    for s in structures:
        sub = long_df[long_df["structure"] == s]
        readers = sorted(sub["reader"].unique())
        rec = {"structure": s, "difference": math.nan, "ci_low": math.nan, "ci_high": math.nan}
        parts = {}
        for cls in ("real", "synthetic"):
            c = sub[sub["case_class"] == cls]
            cases = sorted(c["case"].unique())
            num = np.zeros((len(readers), len(cases)))
            den = np.zeros_like(num)
            for (rd, cs), g in c.groupby(["reader", "case"]):
                num[readers.index(rd), cases.index(cs)] = g["score"].sum()
                den[readers.index(rd), cases.index(cs)] = len(g)
            parts[cls] = (num, den)
        if any(p[1].sum() == 0 for p in parts.values()):
            recs.append(rec)
            continue
        wr = rng.multinomial(len(readers), np.full(len(readers), 1 / len(readers)), size=n_boot).astype(float)
        means = {}
        for cls, (num, den) in parts.items():
            n_c = num.shape[1]
            wc = rng.multinomial(n_c, np.full(n_c, 1 / n_c), size=n_boot).astype(float)
            top = np.einsum("br,rc,bc->b", wr, num, wc)
            bot = np.einsum("br,rc,bc->b", wr, den, wc)
            with np.errstate(invalid="ignore", divide="ignore"):
                means[cls] = top / bot
        d = means["real"] - means["synthetic"]
        d = d[np.isfinite(d)]
        rec["difference"] = float(parts["real"][0].sum() / parts["real"][1].sum()
                                  - parts["synthetic"][0].sum() / parts["synthetic"][1].sum())
        if len(d):
            rec["ci_low"], rec["ci_high"] = (float(v) for v in np.quantile(d, [0.025, 0.975]))
        recs.append(rec)
    return pd.DataFrame(recs, columns=["structure", "difference", "ci_low", "ci_high"])


def holm(p_values) -> list[float]:
    """Holm-adjusted p-values (statsmodels ``multipletests``); NaN stays NaN and is not counted."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out.tolist()


def continuity_mixed_model(long_df, structure: str) -> dict[str, Any]:
    """Linear mixed model of one structure's scores (statsmodels MixedLM): score ~ synthetic, a random
    intercept per reader and a variance component per case; with answers from several sites, site is a
    fixed factor (``score ~ synthetic + C(site)``: sites may score differently on average; readers are
    nested in sites by their site-prefixed codes). Returns the synthetic - real effect and its 95 % Wald
    interval, or a note when the model cannot be fitted (too few readers or cases)."""
    import warnings

    import statsmodels.formula.api as smf

    sub = long_df[long_df["structure"] == structure].copy()
    if sub["reader"].nunique() < 2 or sub["case"].nunique() < 4 or sub["score"].nunique() < 2:
        return {"structure": structure, "effect": None, "note": "too few readers, cases or distinct scores"}
    sub["synthetic"] = (sub["case_class"] == "synthetic").astype(float)
    formula = "score ~ synthetic"
    if "site" in sub.columns and sub["site"].nunique() > 1:
        formula += " + C(site)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = smf.mixedlm(formula, sub, groups=sub["reader"],
                              vc_formula={"case": "0 + C(case)"}).fit(reml=True)
        lo, hi = fit.conf_int().loc["synthetic"]
        return {"structure": structure, "effect": float(fit.params["synthetic"]), "ci_low": float(lo),
                "ci_high": float(hi), "p_value": float(fit.pvalues["synthetic"]), "converged": bool(fit.converged),
                "formula": formula}
    except Exception as exc:  # noqa: BLE001 - a singular fit is reported, not raised
        return {"structure": structure, "effect": None, "formula": formula,
                "note": f"not fitted ({type(exc).__name__}: {exc})"}


GLMM_NOTE = ("variational-Bayes intervals are narrower than the truth (in simulated 8-reader x 12-case studies "
             "the 95 % interval covered the true intercept in about 75-80 % of studies): use the reader-and-case "
             "bootstrap interval for inference, this model for the reader and case SDs and the site effects")


def _pair_frame(rows):
    import pandas as pd

    rows = [r for r in first_sessions(rows) if r["kind"] == "pair" and r.get("correct") is not None]
    return pd.DataFrame({"correct": [float(r["correct"]) for r in rows],
                         "reader": [str(r["reader"]) for r in rows],
                         "case": [str(r["left_token"] if r["real_side"] == "right" else r["right_token"])
                                  for r in rows],
                         "site": [r.get("site") or "" for r in rows]})


def pair_gee(df, formula: str = "correct ~ 1") -> dict[str, Any]:
    """Logistic GEE with an exchangeable working correlation within readers (robust standard errors): the
    population-averaged log-odds of a correct answer. Cases are not a second cluster here, so with cases
    that differ in difficulty its interval is too narrow; it is the fallback when the GLMM cannot be fitted."""
    import warnings

    import statsmodels.api as sm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.GEE.from_formula(formula, groups="reader", data=df, family=sm.families.Binomial(),
                                  cov_struct=sm.cov_struct.Exchangeable()).fit()
    b = float(fit.params["Intercept"])
    se = float(fit.bse["Intercept"])
    return {"method": "GEE (logistic, exchangeable correlation, clustered by reader, robust SE)",
            "formula": formula, "logit": b, "logit_se": se, "proportion": float(_expit(b)),
            "ci_low": float(_expit(b - 1.959964 * se)), "ci_high": float(_expit(b + 1.959964 * se)),
            "site_effects": {k: float(v) for k, v in fit.params.items() if k.startswith("C(site")}}


def _expit(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, float)))


def pair_mixed_model(rows) -> dict[str, Any]:
    """Binomial GLMM of a pair study's answers (first sessions): logit P(correct) = intercept [+ site effects]
    + reader + case, with reader and case (the synthetic image of the pair) as crossed random effects.

    Fitted with statsmodels' ``BinomialBayesMixedGLM`` (variational Bayes, ``fit_vb``): the only statsmodels
    GLMM with crossed random effects. With several sites, site is a fixed factor in sum coding, so the
    intercept is the log-odds for a typical reader and case averaged over sites. When the GLMM cannot be
    fitted (it raises, or gives non-finite values), a GEE clustered by reader is reported instead
    (:func:`pair_gee`) and the result says so and why. See :data:`GLMM_NOTE` on the intervals."""
    import warnings

    if any("left_token" not in r for r in rows):
        return {"method": None, "proportion": None, "note": "no case tokens in the rows"}
    df = _pair_frame(rows)
    if df.empty or df["reader"].nunique() < 2 or df["case"].nunique() < 2 or df["correct"].nunique() < 2:
        return {"method": None, "proportion": None,
                "note": "needs >= 2 readers, >= 2 synthetic cases and both correct and wrong answers"}
    formula = "correct ~ 1"
    if df["site"].nunique() > 1:
        formula += " + C(site, Sum)"
    try:
        from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = BinomialBayesMixedGLM.from_formula(formula, {"reader": "0 + C(reader)", "case": "0 + C(case)"},
                                                       df)
            fit = model.fit_vb()
        b, sd = float(fit.fe_mean[0]), float(fit.fe_sd[0])
        vc = np.exp(np.asarray(fit.vcp_mean, float))  # posterior means of log SDs, in model.vcp_names order
        if not (np.isfinite(b) and np.isfinite(sd) and np.all(np.isfinite(vc))):
            raise FloatingPointError("non-finite estimates")
        names = list(model.vcp_names)
        sites = {n: float(v) for n, v in zip(model.exog_names, fit.fe_mean) if n.startswith("C(site")}
        return {"method": "binomial GLMM (statsmodels BinomialBayesMixedGLM, variational Bayes)",
                "formula": formula + " + (1|reader) + (1|case)", "logit": b, "logit_sd": sd,
                "proportion": float(_expit(b)), "ci_low": float(_expit(b - 1.959964 * sd)),
                "ci_high": float(_expit(b + 1.959964 * sd)),
                "reader_sd": float(vc[names.index("reader")]), "case_sd": float(vc[names.index("case")]),
                "site_effects": sites, "note": GLMM_NOTE}
    except Exception as exc:  # noqa: BLE001 - the fallback is reported with its reason
        why = f"the GLMM could not be fitted ({type(exc).__name__}: {str(exc)[:120]})"
        try:
            out = pair_gee(df, formula)
        except Exception as exc2:  # noqa: BLE001
            return {"method": None, "proportion": None, "note": f"{why}; GEE also failed ({type(exc2).__name__})"}
        out["note"] = why + "; GEE clustered by reader reported instead (case variation not modelled)"
        return out


def analyze_design(rows, spec=None, seed: int = 0, n_boot: int = 2000) -> dict[str, Any]:
    """The analyses that respect the design (readers and cases as random effects), the sessions used,
    and Holm-corrected continuity p-values; added to :func:`analyze`'s result by the report."""
    out: dict[str, Any] = {"sessions": sessions_summary(rows)}
    if not rows:
        return out
    if rows[0]["kind"] == "pair":
        out["bootstrap"] = pair_bootstrap(rows, n_boot, seed)
        out["mixed_model"] = pair_mixed_model(rows)
    else:
        long_df = continuity_long(first_sessions(rows))
        structures = list(spec.structures) if spec is not None else None
        out["bootstrap"] = continuity_bootstrap(long_df, structures, n_boot, seed)
        out["mixed_model"] = [continuity_mixed_model(long_df, s)
                              for s in (structures or list(dict.fromkeys(long_df["structure"])))]
    return out
