"""Tables (CSV + a text summary), plots (matplotlib, Agg) and the raw-response export of a study.

``write_report(store, out_dir)`` writes, per study in the database (a sub-folder per study when
there are several):

* ``responses.csv`` -- the raw responses (blinded tokens, class, reader survey, answer, time,
  window/zoom state);
* pair studies: ``per_reader.csv``, ``groups.csv`` (mean +- SD per reader group),
  ``stratified.csv``, ``question_index.csv`` (success by question index), ``conover.csv``
  (post hoc p-value table), ``gof.json``; plots ``per_reader_hist.png`` (histogram of success
  counts against Binomial(n, 1/2)), ``kde_by_group.png``, ``success_by_question.png``;
* continuity studies: ``continuity.csv`` (per structure, real vs synthetic), ``agreement.json``,
  ``continuity.png``;
* ``sites.csv`` when the answers come from several sites (a merged database): the per-site table;
* ``summary.json`` and ``summary.txt`` for every study.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ctstudio.errors import InputError
from ctstudio.studies import analysis


def export_responses_csv(rows: list[dict], path: Path) -> Path:
    cols = list(rows[0].keys()) if rows else ["study", "reader", "question_index", "choice", "correct"]
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    tmp.replace(path)
    return path


def _clean(obj):
    """JSON-safe: NaN -> None, numpy scalars -> Python, DataFrames -> records."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):
        return _clean(obj.to_dict(orient="records"))
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    return obj


def to_jsonable(res: dict[str, Any]) -> dict[str, Any]:
    res = dict(res)
    res.pop("long", None)
    qi = res.get("question_index")
    if qi and qi.get("conover") is not None:
        qi = dict(qi)
        con = qi["conover"]
        qi["conover"] = {str(i): {str(c): _clean(con.loc[i, c]) for c in con.columns} for i in con.index}
        res["question_index"] = qi
    return _clean(res)


def _plots_pair(res, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from scipy.stats import binom, gaussian_kde

    files = []
    rd = res["per_reader"]
    gof = res["gof"]
    n = gof["n_per_reader"]
    ks = np.arange(n + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(ks, gof["observed"], color="#4477aa", label="readers")
    ax.plot(ks, gof["n_readers"] * binom.pmf(ks, n, 0.5), "o-", color="#cc6677", label=f"Binomial({n}, 1/2)")
    ax.set_xlabel(f"correct answers out of {n}")
    ax.set_ylabel("readers")
    ax.set_title("Per-reader success counts")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "per_reader_hist.png", dpi=100)
    plt.close(fig)
    files.append("per_reader_hist.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = np.linspace(0, 1, 201)
    col, labels = analysis.STRATA["radiologist"]
    groups = [(labels.get(int(v), v), g["success_rate"].to_numpy(float)) for v, g in rd.dropna(subset=[col]).groupby(col)]
    unknown = rd[rd[col].isna()]["success_rate"].to_numpy(float)
    if len(unknown):
        groups.append(("radiologist: not answered", unknown))
    colors = ["#4477aa", "#cc6677", "#999933"]
    for k, (label, rates) in enumerate(groups):
        c = colors[k % len(colors)]
        if len(rates) >= 2 and np.ptp(rates) > 0:
            ax.plot(xs, gaussian_kde(rates)(xs), color=c, label=f"{label} (n={len(rates)})")
            ax.plot(rates, np.zeros_like(rates), "|", ms=18, mew=2, color=c, clip_on=False)  # one tick per reader
        else:  # one reader (or identical rates): no density; each reader's rate as a line, so the plot is not empty
            for k2, r in enumerate(np.unique(rates)):
                ax.axvline(r, color=c, lw=2.5, label=None if k2 else f"{label} (n={len(rates)}, too few for a density)")
    if not any(len(r) >= 2 and np.ptp(r) > 0 for _, r in groups):
        ax.set_ylim(0, 1)
    ax.axvline(0.5, color="grey", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("success rate (ticks or lines: the readers)")
    ax.set_ylabel("density")
    ax.set_title("Success rate by reader group (KDE)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "kde_by_group.png", dpi=100)
    plt.close(fig)
    files.append("kde_by_group.png")

    qi = res["question_index"]["success_by_question"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(list(qi.keys()), list(qi.values()), "o-")
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set_ylim(0, 1)
    ax.set_xlabel("question index")
    ax.set_ylabel("success rate (all readers)")
    kp = res["question_index"].get("kruskal_p")
    ax.set_title("Success by question index" + (f" (Kruskal-Wallis p = {kp:.3g})" if kp is not None else ""))
    fig.tight_layout()
    fig.savefig(out / "success_by_question.png", dpi=100)
    plt.close(fig)
    files.append("success_by_question.png")
    return files


def _plots_continuity(res, out: Path, spec=None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    t = res["continuity"]
    scale = list(getattr(spec, "scale", None) or ["1", "2", "3"])
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    y = np.arange(len(t))
    # scores run 1..len(scale): bars start at 1 (the lowest score), not at 0
    for off, col, name in ((-0.2, "real_mean", "real"), (0.2, "synthetic_mean", "synthetic")):
        vals = t[col].to_numpy(float)
        has = np.isfinite(vals)
        ax.barh(y[has] + off, vals[has] - 1, left=1, height=0.4, label=name,
                color="#4477aa" if name == "real" else "#cc6677")
    for yi in y[~np.isfinite(t["real_mean"].to_numpy(float)) & ~np.isfinite(t["synthetic_mean"].to_numpy(float))]:
        ax.text(1.05, yi, "not scored (not visible)", va="center", fontsize=7, color="grey")
    ax.set_yticks(y, t["structure"], fontsize=8)
    ax.set_xlim(1, len(scale))
    ax.set_xticks(range(1, len(scale) + 1), [f"{i}: {s}" for i, s in enumerate(scale, 1)], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("mean continuity score")
    ax.set_title("Anatomical continuity: real vs synthetic")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "continuity.png", dpi=100)
    plt.close(fig)
    return ["continuity.png"]


def _fmt(v, nd=3):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{nd}g}" if isinstance(v, float) else str(v)


def summary_text(res: dict[str, Any]) -> str:
    lines = [f"study: {res.get('study')}   kind: {res.get('kind')}   responses: {res.get('n_responses')}   "
             f"readers: {res.get('n_readers')}"]
    if res.get("kind") == "pair":
        o = res["overall"]
        lines.append(f"overall: {o['correct']}/{o['n']} correct ({o['success_rate']:.1%})")
        lines.append("")
        lines.append(f"{'reader':<14}{'n':>4}{'correct':>9}{'rate':>8}{'p(>=k)':>10}{'p(2-sided)':>12}{'median ms':>11}")
        for _, r in res["per_reader"].iterrows():
            lines.append(f"{str(r['reader']):<14}{int(r['n']):>4}{int(r['correct']):>9}{r['success_rate']:>8.2f}"
                         f"{r['p_binom_greater']:>10.4f}{r['p_binom_two_sided']:>12.4f}{r['median_response_ms']:>11.0f}")
        g = res["gof"]
        lines.append("")
        lines.append(gof_text(g))
        qi = res["question_index"]
        lines.append(f"Kruskal-Wallis over question index: H = {_fmt(qi.get('kruskal_h'))}, "
                     f"p = {_fmt(qi.get('kruskal_p'))}")
        lines.append("")
        lines.append(f"{'stratum':<14}{'group':<26}{'readers':>8}{'mean':>8}{'SD':>8}")
        for _, r in res["groups"].iterrows():
            lines.append(f"{r['stratum']:<14}{str(r['group']):<26}{int(r['n_readers']):>8}{r['mean_success']:>8.3f}"
                         f"{_fmt(r['sd_success']):>8}")
        for s in res["stratified"]:
            lines.append(f"  {s['stratum']}: {s['test'] or '-'} stat {_fmt(s['statistic'])} p {_fmt(s['p_value'])} "
                         f"groups {s['groups']}")
    elif res.get("kind") == "continuity":
        lines.append("")
        lines.append(f"{'structure':<44}{'real':>12}{'synthetic':>12}{'U':>8}{'p':>9}")
        for _, r in res["continuity"].iterrows():
            lines.append(f"{r['structure']:<44}{_fmt(r['real_mean']):>7} (n{int(r['n_real'])})"
                         f"{_fmt(r['synthetic_mean']):>7} (n{int(r['n_synthetic'])})"
                         f"{_fmt(r['mannwhitney_u']):>8}{_fmt(r['p_value']):>9}")
        a = res["agreement"]
        lines.append(f"agreement: {a.get('method') or '-'} kappa = {_fmt(a.get('kappa'))} over {a.get('n_items')} items"
                     + (f" ({a['note']})" if a.get("note") else ""))
    else:
        lines.append(res.get("note", ""))
    lines += design_text(res.get("design"))
    lines += sites_text(res.get("sites"))
    return "\n".join(lines)


def sites_text(sites: dict[str, Any] | None) -> list[str]:
    """The per-site table of a study run at several sites, as summary lines."""
    if not sites:
        return []
    t = sites["table"]
    lines = ["", f"by site ({len(sites['sites'])} sites; reader codes are kept apart per site as SITE/CODE):"]
    if "success_rate" in t.columns:
        lines.append(f"  {'site':<16}{'readers':>8}{'answers':>8}{'correct':>8}{'rate':>7}  95% interval"
                     f"{'reader mean':>13}{'SD':>7}")
        for _, r in t.iterrows():
            lines.append(f"  {str(r['site']) or '(local)':<16}{int(r['n_readers']):>8}{int(r['n']):>8}"
                         f"{int(r['correct']):>8}{r['success_rate']:>7.3f}  [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
                         f"{r['mean_reader_success']:>10.3f}{_fmt(r['sd_reader_success']):>7}")
        tst = sites.get("test") or {}
        lines.append(f"  sites compared (readers' success rates): {tst.get('test') or '-'} "
                     f"stat {_fmt(tst.get('statistic'))} p {_fmt(tst.get('p_value'))}")
    else:
        lines.append(f"  {'site':<16}{'structure':<44}{'real':>8}{'synthetic':>10}{'diff':>8}")
        for _, r in t.iterrows():
            lines.append(f"  {str(r['site']) or '(local)':<16}{str(r['structure']):<44}{_fmt(r['real_mean']):>8}"
                         f"{_fmt(r['synthetic_mean']):>10}{_fmt(r['difference']):>8}")
        lines.append("  the pooled mixed models above take site as a fixed factor")
    return lines


def gof_text(g: dict[str, Any]) -> str:
    """The goodness-of-fit result in words: which readers it uses, whether the chi-square test could be
    computed (sparse bins pooled), and the Monte-Carlo p-value."""
    head = f"goodness of fit of the readers' success counts to Binomial({g['n_per_reader']}, 1/2)"
    used = f"\n  uses {g['sessions_used']}" if g.get("sessions_used") else ""
    mc = f"Monte-Carlo p = {_fmt(g['mc_p_value'])} ({g['mc_draws']} simulated studies)"
    if g.get("dof", 0) < 1:
        chi = (f"chi-square not computable: with {g['n_readers']} reader(s) every count bin had to be pooled into "
               "one (each pooled bin needs an expected count >= 5)")
    else:
        bins = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in g["pooled_bins"])
        chi = (f"chi-square X2 = {_fmt(g['statistic'])}, dof {g['dof']}, p = {_fmt(g['p_value'])} "
               f"(count bins {bins}; observed {g['pooled_observed']}, expected {g['pooled_expected']})")
    rec = "Monte-Carlo" if g["recommended"] == "monte_carlo" else "chi-square"
    return f"{head}:{used}\n  {chi}\n  {mc}; use the {rec} p-value"


def design_text(design: dict[str, Any] | None) -> list[str]:
    """The sessions used and the analyses that respect readers and cases, as summary lines."""
    if not design:
        return []
    lines = [""]
    ss = design["sessions"]
    lines.append(f"sessions: {ss['n_sessions']}; unfinished: {', '.join(ss['unfinished']) or 'none'}; "
                 f"repeated: {', '.join(ss['repeated']) or 'none'}")
    lines.append(f"  how they are treated: {ss['treatment']}")
    b = design.get("bootstrap")
    if isinstance(b, dict) and b.get("estimate") is not None:
        lines.append(f"proportion correct {b['estimate']:.3f}, {b['level']:.0%} interval [{b['ci_low']:.3f}, "
                     f"{b['ci_high']:.3f}] ({b['method']}, {b['n_readers']} readers x {b['n_cases']} synthetic "
                     f"cases, {b['n_boot']} draws)")
        m = design.get("mixed_model") or {}
        if m.get("proportion") is not None:
            sds = (f"; reader SD {m['reader_sd']:.2f}, case SD {m['case_sd']:.2f} (log-odds)"
                   if "reader_sd" in m else "")
            sites = "".join(f"; {k} {v:+.2f}" for k, v in (m.get("site_effects") or {}).items())
            lines.append(f"mixed model: P(correct) for a typical reader and case {m['proportion']:.3f} "
                         f"[{m['ci_low']:.3f}, {m['ci_high']:.3f}]{sds}{sites}")
            lines.append(f"  {m['method']}: {m['formula']}")
            lines.append(f"  note: {m['note']}")
        elif m:
            lines.append(f"mixed model: - ({m.get('note', '')})")
    elif hasattr(b, "iterrows"):
        lines.append("real - synthetic mean score, 95% reader-and-case bootstrap interval; mixed model effect "
                     "(synthetic - real) [95% CI]:")
        mm = {m["structure"]: m for m in design.get("mixed_model", [])}
        for _, r in b.iterrows():
            m = mm.get(r["structure"], {})
            mtxt = (f"{m['effect']:+.2f} [{m['ci_low']:+.2f}, {m['ci_high']:+.2f}]" if m.get("effect") is not None
                    else f"- ({m.get('note', '')})")
            lines.append(f"  {r['structure']:<44}{_fmt(r['difference']):>8} [{_fmt(r['ci_low'])}, "
                         f"{_fmt(r['ci_high'])}]   {mtxt}")
    return lines


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "study"


def write_study_report(rows: list[dict], out: Path, spec=None, seed: int = 0) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    res = analysis.analyze(rows, spec=spec, seed=seed)
    files = [export_responses_csv(rows, out / "responses.csv").name]
    if res.get("kind") == "pair":
        res["per_reader"].to_csv(out / "per_reader.csv", index=False)
        res["groups"].to_csv(out / "groups.csv", index=False)
        import pandas as pd

        pd.DataFrame(res["stratified"]).assign(groups=lambda d: d["groups"].map(json.dumps)).to_csv(
            out / "stratified.csv", index=False)
        qi = res["question_index"]
        pd.DataFrame({"question_index": list(qi["success_by_question"]),
                      "success_rate": list(qi["success_by_question"].values()),
                      "n": [qi["n_by_question"][k] for k in qi["success_by_question"]]}).to_csv(
            out / "question_index.csv", index=False)
        files += ["per_reader.csv", "groups.csv", "stratified.csv", "question_index.csv"]
        if qi.get("conover") is not None:
            qi["conover"].to_csv(out / "conover.csv", index_label="question_index")
            files.append("conover.csv")
        (out / "gof.json").write_text(json.dumps(_clean(res["gof"]), indent=2))
        files.append("gof.json")
        files += _plots_pair(res, out)
    elif res.get("kind") == "continuity":
        res["continuity"].to_csv(out / "continuity.csv", index=False)
        (out / "agreement.json").write_text(json.dumps(_clean(res["agreement"]), indent=2))
        files += ["continuity.csv", "agreement.json"]
        files += _plots_continuity(res, out, spec)
    if res.get("sites"):
        res["sites"]["table"].to_csv(out / "sites.csv", index=False)
        files.append("sites.csv")
    text = summary_text(res)
    (out / "summary.txt").write_text(text + "\n")
    js = to_jsonable(res)
    js["files"] = files + ["summary.txt", "summary.json"]
    js["out_dir"] = str(out)
    (out / "summary.json").write_text(json.dumps(js, indent=2))
    res["files"] = js["files"]
    res["text"] = text
    res["out_dir"] = str(out)
    return res


def write_report(store, out_dir, study: str | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Analyse every study in ``store`` (or the one named) and write its tables and plots."""
    out = Path(out_dir)
    studies = store.studies()
    if study is not None:
        studies = [s for s in studies if s["name"] == study]
        if not studies:
            raise InputError(f"no study named {study!r} in the database", path=store.path,
                             hint="list the studies with `ctstudio study status --db ...`")
    if not studies:
        raise InputError("the database holds no study", path=store.path, hint="run a study first")
    results = []
    for s in studies:
        rows = store.responses_table(s["id"])
        sub = out if len(studies) == 1 else out / _safe_name(s["name"])
        results.append(write_study_report(rows, sub, spec=store.spec_of(s["id"]), seed=seed))
    return results
