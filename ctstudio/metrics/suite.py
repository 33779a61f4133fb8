"""Run the evaluation metrics on two sets of volumes and write the JSON + HTML report.

This is what ``ctstudio evaluate`` (and later the app's results tab) calls. It takes Volumes in
HU, never touches widgets, reports progress through ``callback({"stage", "done", "total"})`` and
stops when ``cancel()`` returns true.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ctstudio.errors import CTStudioError, InputError
from ctstudio.imaging.intensity import FULL_12BIT, RANGES, HURange
from ctstudio.volume import Volume

ALL_METRICS = ("fid", "msssim", "mmd", "psnr", "ssim", "cv", "moments", "icnet")
DEFAULT_METRICS = ("fid", "msssim", "mmd", "psnr", "ssim", "cv", "moments")


@dataclass
class EvalOptions:
    fid_windows: tuple[str, ...] = ("12-bit", "ascii-brain")
    fid_orientations: tuple[str, ...] = ("axial", "coronal", "sagittal")
    fid_slices: int = 1
    fid_step: int = 1
    fid_batch: int = 8
    paired_range: HURange = FULL_12BIT
    msssim_max_pairs: int | None = 200
    mmd_batch: int = 4
    mmd_batches: int = 20
    mmd_kernel: str = "linear"
    cv_range: tuple[float, float] = (0.0, 80.0)
    moments_stride: int = 1
    icnet_slices: tuple[int, ...] = (7, 14, 21, 28)
    icnet_mus: tuple[float, ...] = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)
    icnet_shift: str = "icnet"
    calibrator: str = "auto"
    icnet_checkpoint: str | None = None
    seed: int = 0
    explicit: frozenset = field(default_factory=frozenset)


def parse_range(text: str) -> HURange:
    """``12-bit`` / ``ascii-brain`` / ``icnet-roi`` or ``LO,HI`` in HU."""
    t = text.strip().lower()
    if t in RANGES:
        return RANGES[t]
    try:
        lo, hi = (float(v) for v in t.split(","))
    except ValueError:
        raise InputError(f"cannot read the HU range {text!r}; give LO,HI in HU (e.g. -10,70) or one of "
                         f"{', '.join(RANGES)}") from None
    return HURange(lo, hi, f"[{lo:g}, {hi:g}]")


def parse_metrics(text: str | None) -> tuple[tuple[str, ...], bool]:
    """The metric names asked for, and whether they were asked for explicitly."""
    if not text:
        return DEFAULT_METRICS, False
    names = [m.strip().lower().replace("-", "").replace("_", "") for m in text.split(",") if m.strip()]
    alias = {"msssim": "msssim", "bmmd": "mmd", "bmmd2": "mmd", "mmd2": "mmd", "robustness": "icnet", "all": "all"}
    out: list[str] = []
    for n in names:
        n = alias.get(n, n)
        if n == "all":
            out += [m for m in ALL_METRICS if m not in out]
        elif n not in ALL_METRICS:
            raise InputError(f"unknown metric {n!r}; choose from {', '.join(ALL_METRICS)} (or all)")
        elif n not in out:
            out.append(n)
    return tuple(out), True


def _arrays(vols: Sequence[Volume]) -> list[np.ndarray]:
    return [v.array for v in vols]


def _msssim_images(arrays: Sequence[np.ndarray], orientation: str) -> list[np.ndarray]:
    from ctstudio.metrics.fid import volume_slices

    return volume_slices(arrays, orientation, 1)


def run_metrics(
    real: Sequence[Volume],
    fake: Sequence[Volume],
    metrics: Sequence[str] = DEFAULT_METRICS,
    options: EvalOptions | None = None,
    callback: Callable[[dict], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> tuple[dict, dict]:
    """Compute ``metrics``; returns (JSON-able results, plot data).

    A metric that cannot be computed on these inputs (too few images, mismatched shapes, missing
    weights) is recorded as ``{"error": message}``; when it was asked for explicitly
    (``options.explicit``) the error is raised instead.
    """
    from ctstudio.errors import Cancelled

    opts = options or EvalOptions()
    if not real or not fake:
        raise InputError("evaluation needs at least one real and one generated volume")
    ra, fa = _arrays(real), _arrays(fake)
    results: dict = {}
    plotdata: dict = {}

    def attempt(name: str, fn):
        if cancel is not None and cancel():
            raise Cancelled("evaluation was cancelled")
        t0 = time.perf_counter()
        try:
            out = fn()
        except Cancelled:
            raise
        except CTStudioError as exc:
            if name in opts.explicit:
                raise
            out = {"error": str(exc)}
        if isinstance(out, dict):
            out.setdefault("seconds", round(time.perf_counter() - t0, 3))
        results[name] = out

    for name in metrics:
        if name == "fid":
            from ctstudio.metrics.fid import fid_axcorsag

            attempt("fid", lambda: fid_axcorsag(ra, fa, opts.fid_windows, opts.fid_orientations,
                                                slices_per_volume=opts.fid_slices,
                                                step=opts.fid_step, batch_size=opts.fid_batch,
                                                callback=callback, cancel=cancel))
        elif name == "msssim":
            attempt("msssim", lambda: _msssim(ra, fa, opts, callback))
        elif name == "mmd":
            from ctstudio.metrics.mmd import bmmd2

            attempt("mmd", lambda: bmmd2(ra, fa, opts.mmd_batch, opts.mmd_batches, opts.mmd_kernel,
                                         seed=opts.seed, callback=callback))
        elif name in ("psnr", "ssim"):
            if "paired" not in plotdata:
                try:
                    plotdata["paired"] = _paired(real, fake, opts)
                except CTStudioError as exc:
                    if name in opts.explicit:
                        raise
                    plotdata["paired"] = {"error": str(exc)}
            p = plotdata["paired"]
            if "error" in p:
                results[name] = {"error": p["error"]}
            else:
                key = "psnr_db" if name == "psnr" else "ssim"
                vals = [q[key] for q in p["pairs"]]
                finite = [v for v in vals if np.isfinite(v)]
                results[name] = {"mean": float(np.mean(finite)) if finite else float("inf"),
                                 "per_pair": [{"real": q["real"], "fake": q["fake"], name: q[key],
                                               "mae_hu": q["mae_hu"]} for q in p["pairs"]],
                                 "hu_range": p["hu_range"], "data_range_hu": p["data_range_hu"],
                                 "pairing": "by order of the inputs (sorted file names within a folder)"}
        elif name == "cv":
            from ctstudio.metrics.cv import cv_summary

            attempt("cv", lambda: {"real": cv_summary(ra, hu_range=opts.cv_range),
                                   "synthetic": cv_summary(fa, hu_range=opts.cv_range)})
        elif name == "moments":
            from ctstudio.metrics.moments import distribution_alignment

            def mom():
                out = distribution_alignment(ra, fa, stride=opts.moments_stride, seed=opts.seed)
                plotdata["moments"] = (out.pop("real_moments"), out.pop("fake_moments"), out["moment_names"])
                return out

            attempt("moments", mom)
        elif name == "icnet":
            attempt("icnet", lambda: _icnet(ra, opts, callback, cancel))
    return results, plotdata


def _msssim(ra, fa, opts: EvalOptions, callback) -> dict:
    from ctstudio.metrics.ssim import ms_ssim_diversity

    out: dict = {"note": "mean pairwise MS-SSIM among the mid slices of the volumes of one set; "
                         "lower = more diverse. The real set is the reference."}
    for label, arrays in (("synthetic", fa), ("real", ra)):
        for orient in ("axial", "coronal", "sagittal"):
            try:
                out[f"{label}_{orient}"] = ms_ssim_diversity(_msssim_images(arrays, orient),
                                                              max_pairs=opts.msssim_max_pairs, seed=opts.seed,
                                                              callback=callback)
            except InputError as exc:
                if label == "synthetic" and orient == "axial":
                    raise
                out[f"{label}_{orient}"] = {"error": str(exc)}
    return out


def _paired(real: Sequence[Volume], fake: Sequence[Volume], opts: EvalOptions) -> dict:
    from ctstudio.metrics.ssim import paired_metrics

    if len(real) != len(fake):
        raise InputError(f"PSNR/SSIM compare pairs, but there are {len(real)} real and {len(fake)} generated volumes",
                         hint="give the same number of volumes in --real and --fake, in matching order")
    pairs = []
    for r, f in zip(real, fake):
        name_r = r.provenance.source_files[0] if r.provenance.source_files else "real"
        name_f = f.provenance.source_files[0] if f.provenance.source_files else "fake"
        if r.shape != f.shape:
            raise InputError(f"PSNR/SSIM need volumes of one shape; {name_r} is {r.shape} but {name_f} is {f.shape}",
                             hint="compare a volume with its own reference, on the same grid")
        pairs.append({"real": name_r, "fake": name_f, **paired_metrics(r.array, f.array, opts.paired_range)})
    return {"pairs": pairs, "hu_range": [opts.paired_range.lower, opts.paired_range.upper],
            "data_range_hu": opts.paired_range.width}


def make_calibrator(opts: EvalOptions):
    from ctstudio.metrics import robustness as rb

    if opts.calibrator == "histogram":
        return rb.histogram_matching, "histogram matching"
    if opts.calibrator in ("icnet", "auto"):
        try:
            return rb.icnet_calibrator(opts.icnet_checkpoint)
        except CTStudioError as exc:
            if opts.calibrator == "icnet":
                raise
            reason = str(exc).splitlines()[0]
            return rb.histogram_matching, f"histogram matching (IC-Net not available: {reason})"
    raise InputError(f"unknown calibrator {opts.calibrator!r}; choose auto, icnet or histogram")


def _icnet(ra, opts: EvalOptions, callback, cancel) -> dict:
    from ctstudio.metrics.robustness import robustness_curve

    calibrate, label = make_calibrator(opts)
    curves = [robustness_curve(a, calibrate, opts.icnet_slices, opts.icnet_mus, opts.icnet_shift,
                               callback=callback, cancel=cancel) for a in ra]
    merged = curves[0]
    if len(curves) > 1:
        for i, row in enumerate(merged["curve"]):
            for key in ("mae_hu", "mae_roi_hu", "mae_shifted_hu", "mae_shifted_roi_hu"):
                row[key] = float(np.nanmean([c["curve"][i][key] for c in curves]))
    merged["calibrator"] = label
    merged["n_volumes"] = len(curves)
    return merged


def write_report(results: dict, plotdata: dict, real: Sequence[Volume], fake: Sequence[Volume], out_dir,
                 inputs: dict | None = None, examples_window: str = "brain") -> dict[str, Path]:
    """``metrics.json``, ``report.html`` and ``plots/*.png`` under ``out_dir``; returns their paths.
    ``examples_window`` is the window preset of the example-slice figure."""
    from ctstudio.metrics import report

    out = Path(out_dir)
    plots_dir = out / "plots"
    plots: dict[str, Path] = {}
    m = results
    if "fid" in m and "error" not in m["fid"]:
        plots["fid"] = report.plot_fid(m["fid"]["fid"], plots_dir / "fid.png")
    if "moments" in plotdata:
        r, f, names = plotdata["moments"]
        plots["moments"] = report.plot_moment_matrix(r, f, names, plots_dir / "moments_scatter_matrix.png")
    if "icnet" in m and "error" not in m["icnet"]:
        plots["icnet"] = report.plot_robustness(m["icnet"], plots_dir / "icnet_robustness.png",
                                                m["icnet"].get("calibrator", ""))
    if "cv" in m and "error" not in m["cv"]:
        plots["cv"] = report.plot_cv(m["cv"]["real"], m["cv"]["synthetic"], plots_dir / "parenchyma_cv.png")
    if "msssim" in m and "error" not in m["msssim"]:
        ok = {k: v for k, v in m["msssim"].items() if isinstance(v, dict) and "ms_ssim_mean" in v}
        if ok:
            plots["msssim"] = report.plot_msssim(ok, plots_dir / "msssim.png")
    plots["examples"] = report.plot_examples(list(real), list(fake), plots_dir / "examples.png", examples_window)
    doc = {"inputs": inputs or {}, "metrics": m,
           "plots": {k: str(p.relative_to(out)) for k, p in plots.items()}}
    json_path = report.write_json(doc, out / "metrics.json")
    html_path = report.write_html(doc, plots, out / "report.html")
    return {"json": json_path, "html": html_path, **plots}
