"""The evaluation report: ``metrics.json`` (every number) and ``report.html`` with PNG plots beside it.

Plots are drawn with matplotlib's object API on the Agg canvas (no pyplot, no GUI backend) and
every file is written atomically (:mod:`ctstudio.io.atomic`).
"""

from __future__ import annotations

import html
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ctstudio.io.atomic import atomic_write_bytes, atomic_write_text

REAL_COLOUR = "#1f77b4"
FAKE_COLOUR = "#d62728"


def _figure(w: float = 6.0, h: float = 4.0, layout: str | None = None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _readable(path: Path) -> Path:
    """Atomic writes start as private temp files (0600); a report is meant to be shared (0644 - umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o644 & ~umask)
    return path


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return _readable(path)


# -- plots ----------------------------------------------------------------------------------------
def plot_fid(fid: dict, path: Path) -> Path:
    """Grouped bars: FID per orientation, one bar per window."""
    windows = list(fid)
    orients = list(next(iter(fid.values())))
    fig = _figure(6, 3.6)
    ax = fig.add_subplot(111)
    width = 0.8 / max(1, len(windows))
    x = np.arange(len(orients))
    for i, w in enumerate(windows):
        vals = [fid[w][o] for o in orients]
        bars = ax.bar(x + i * width - 0.4 + width / 2, vals, width, label=w)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(x, [f"FID-{o[:3].capitalize()}" for o in orients])
    ax.set_ylabel("FID (lower = closer to real)")
    ax.set_title("FID on mid slices, per window")
    ax.legend(title="window")
    return _save(fig, path)


def plot_moment_matrix(real: np.ndarray, fake: np.ndarray, names: Sequence[str], path: Path) -> Path:
    """Scatter-plot matrix of the five moments (real blue, synthetic red; histograms on the diagonal)."""
    n = real.shape[1]
    fig = _figure(2.0 * n, 2.0 * n)
    axes = fig.subplots(n, n)
    for i in range(n):
        for j in range(n):
            ax = axes[i, j]
            if i == j:
                lo = min(real[:, i].min(), fake[:, i].min())
                hi = max(real[:, i].max(), fake[:, i].max())
                bins = np.linspace(lo, hi if hi > lo else lo + 1e-9, 20)
                ax.hist(real[:, i], bins=bins, color=REAL_COLOUR, alpha=0.5, density=True)
                ax.hist(fake[:, i], bins=bins, color=FAKE_COLOUR, alpha=0.5, density=True)
            else:
                ax.scatter(real[:, j], real[:, i], s=6, color=REAL_COLOUR, alpha=0.6, label="real")
                ax.scatter(fake[:, j], fake[:, i], s=6, color=FAKE_COLOUR, alpha=0.6, label="synthetic")
            ax.tick_params(labelsize=6)
            if i == n - 1:
                ax.set_xlabel(names[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(names[i], fontsize=8)
    handles, labels = axes[0, 1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right")
    fig.suptitle("Per-slice intensity moments: real vs synthetic")
    return _save(fig, path)


def plot_robustness(result: dict, path: Path, calibrator: str = "") -> Path:
    curve = result["curve"]
    mus = [r["mu"] for r in curve]
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot(111)
    ax.plot(mus, [r["mae_hu"] for r in curve], "o-", color=FAKE_COLOUR, label="calibrated, whole slice")
    ax.plot(mus, [r["mae_roi_hu"] for r in curve], "s--", color=FAKE_COLOUR, alpha=0.6,
            label=f"calibrated, ROI [{result['roi_hu'][0]:g}, {result['roi_hu'][1]:g}] HU")
    ax.plot(mus, [r["mae_shifted_hu"] for r in curve], "o-", color="grey", label="shifted, not calibrated")
    ax.plot(mus, [r["mae_shifted_roi_hu"] for r in curve], "s--", color="grey", alpha=0.6,
            label="shifted, not calibrated, ROI")
    ax.set_xlabel("intensity shift mu")
    ax.set_ylabel("MAE vs true slice (HU)")
    label = calibrator if len(calibrator) <= 70 else calibrator[:67] + "..."
    ax.set_title(f"Calibration robustness: slices {result['slices']}, shift in {result['mode']} range\n"
                 f"calibrator: {label}", fontsize=10)
    ax.legend(fontsize=8, loc="upper center")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_cv(real: dict, fake: dict, path: Path) -> Path:
    fig = _figure(5, 3.6)
    ax = fig.add_subplot(111)
    for x, (name, d, c) in enumerate((("real", real, REAL_COLOUR), ("synthetic", fake, FAKE_COLOUR))):
        vals = [p["cv"] for p in d["per_volume"]]
        ax.scatter(np.full(len(vals), x) + np.linspace(-0.1, 0.1, len(vals)), vals, color=c, s=25)
        ax.hlines(np.mean(vals), x - 0.25, x + 0.25, color=c)
    ax.set_xticks([0, 1], ["real", "synthetic"])
    ax.set_ylabel("parenchyma CV (sd / mean)")
    ax.set_title("Coefficient of variation in parenchyma, per volume")
    ax.set_xlim(-0.6, 1.6)
    return _save(fig, path)


def plot_msssim(values: dict, path: Path) -> Path:
    names = list(values)
    fig = _figure(5, 3.4)
    ax = fig.add_subplot(111)
    means = [values[k]["ms_ssim_mean"] for k in names]
    sds = [values[k]["ms_ssim_sd"] for k in names]
    bars = ax.bar(names, means, yerr=sds, color=[REAL_COLOUR if k.startswith("real") else FAKE_COLOUR for k in names])
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean pairwise MS-SSIM (lower = more diverse)")
    ax.set_title("MS-SSIM diversity")
    ax.tick_params(axis="x", labelsize=7, rotation=20)
    return _save(fig, path)


def plot_examples(real: Sequence, fake: Sequence, path: Path, window: str = "brain", n: int = 4) -> Path:
    """Mid axial, coronal and sagittal slices of the first volumes of each set, side by side, at their
    physical aspect ratio. Items are Volumes (or bare [z, y, x] arrays, shown with square voxels)."""
    from ctstudio.imaging.window import apply_window, preset
    from ctstudio.metrics.fid import AXES, orient_slice

    w = preset(window)
    rows = [("real", v) for v in list(real)[:n]] + [("synthetic", v) for v in list(fake)[:n]]
    fig = _figure(7.5, 2.4 * len(rows), layout="constrained")
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for r, (label, item) in enumerate(rows):
        vol = getattr(item, "array", item)
        sz, sy, sx = getattr(item, "spacing_zyx", (1.0, 1.0, 1.0))
        aspects = {0: sy / sx, 1: sz / sx, 2: sz / sy}  # row spacing / column spacing of each view
        for c, (name, axis) in enumerate(AXES.items()):
            img = apply_window(orient_slice(vol, axis, vol.shape[axis] // 2), w, np.float32)
            ax = axes[r, c]
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, aspect=aspects[axis], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"{label} {r % n + 1 if label == 'real' else r - min(n, len(real)) + 1}", fontsize=8)
            if r == 0:
                ax.set_title(name, fontsize=9)
    fig.suptitle(f"Mid slices ({w})")
    return _save(fig, path)


# -- files ----------------------------------------------------------------------------------------
def _jsonable(obj: Any):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items() if not isinstance(v, np.ndarray) or v.ndim == 0}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def write_json(results: dict, path: Path) -> Path:
    atomic_write_text(path, json.dumps(_jsonable(results), indent=2, sort_keys=True) + "\n")
    return _readable(path)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return html.escape(str(v))


def _table(d: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            rows += _table(v, key + " / ")
        elif isinstance(v, np.ndarray):
            continue
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for i, item in enumerate(v):
                rows += _table(item, f"{key}[{i}] / ")
        else:
            rows.append((key, _fmt(v)))
    return rows


def _rel(plot: Path, page: Path) -> str:
    try:
        rel = Path(plot).resolve().relative_to(Path(page).resolve().parent).as_posix()
    except ValueError:
        rel = Path(plot).resolve().as_uri()
    return html.escape(rel, quote=True)


def write_html(results: dict, plots: dict[str, Path], path: Path, title: str = "ctstudio evaluation") -> Path:
    """One self-contained page: inputs, each metric's table, and its plot (PNG beside the page)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 8px;"
             "text-align:left}img{max-width:100%;border:1px solid #eee;margin:8px 0}.err{color:#b00}</style>",
             f"</head><body><h1>{html.escape(title)}</h1>"]
    inputs = results.get("inputs", {})
    if inputs:
        parts.append("<h2>Inputs</h2><table>")
        parts += [f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in _table(inputs)]
        parts.append("</table>")
    for name, section in results.get("metrics", {}).items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        if isinstance(section, dict) and "error" in section and len(section) <= 2:
            parts.append(f"<p class='err'>not computed: {html.escape(str(section['error']))}</p>")
            continue
        if name in plots:
            parts.append(f"<img src='{_rel(plots[name], path)}' alt='{html.escape(name)} plot'>")
        rows = _table(section) if isinstance(section, dict) else [(name, _fmt(section))]
        parts.append("<details open><summary>numbers</summary><table>")
        parts += [f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows]
        parts.append("</table></details>")
    if "examples" in plots:
        parts.append(f"<h2>Example slices</h2><img src='{_rel(plots['examples'], path)}' alt='example slices'>")
    parts.append("</body></html>\n")
    atomic_write_text(path, "\n".join(parts))
    return _readable(path)
