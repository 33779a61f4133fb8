"""``ctstudio info PATH [--json]``: what a volume is (shape, spacing, HU, metadata, series, geometry checks)."""

from __future__ import annotations

import json

NAME = "info"
HELP = "print shape, spacing, HU range, kernel and geometry checks of a volume"


def add_arguments(p) -> None:
    from ctstudio.commands._reading import add_reading_options
    from ctstudio.io.policy import RESAMPLE

    add_reading_options(p, RESAMPLE)
    p.add_argument("path", help="DICOM folder or file, NIfTI, MHA or NRRD")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--series", metavar="UID", help="SeriesInstanceUID, when a folder holds several series")


def run(args) -> int:
    from ctstudio.commands._reading import reading_options
    from ctstudio.io.api import inspect_path

    report = inspect_path(args.path, series_uid=args.series, **reading_options(args))
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
        return 0
    v = report["volume"]
    z, y, x = v["shape_zyx"]
    sx, sy, sz = v["spacing_xyz_mm"]
    hu = v["hu"]
    md = v["metadata"]
    lines = [
        f"file:      {report['path']}",
        f"format:    {report['format']}",
        f"shape:     {z} x {y} x {x} (z, y, x)",
        f"spacing:   {sx:.4g} x {sy:.4g} x {sz:.4g} mm (x, y, z)",
        f"HU:        min {hu['min']}, max {hu['max']}, mean {hu['mean']:.1f}",
        f"modality:  {md.get('modality') or '-'}    kernel: {md.get('kernel') or '-'}",
        f"series:    {md.get('series_description') or '-'}",
    ]
    if v["voxels_outside_12bit"]:
        lines.append(f"note:      {v['voxels_outside_12bit']} voxels lie outside the 12-bit range [-1024, 3071] HU")
    for key, label in (("tilt", "tilt"), ("spacing_uniformity", "z spacing")):
        if key in report:
            lines.append(f"{label + ':':<11}{report[key]}")
    geo = report.get("geometry") or {}
    for m in geo.get("missing_slices", []):
        lines.append(f"missing:   {m['n_missing']} slice(s) between {m['after']} and {m['before']} (gap {m['gap_mm']} mm)")
    for a, b in geo.get("duplicate_positions", []):
        lines.append(f"duplicate: {a} and {b} lie at the same position")
    for step in v.get("provenance", {}).get("steps", []):
        lines.append(f"note:      {step}")
    if report.get("series"):
        lines.append(f"series found ({len(report['series'])}):")
    for s in report.get("series", []):
        mark = "*" if s["series_instance_uid"] == report.get("chosen_series") else " "
        lines.append(f" {mark} {s['series_instance_uid'] or '<no UID>'}: {s['modality'] or '?'}, {s['n_files']} files, "
                     f"{s['rows']}x{s['columns']}, {s['description']!r}")
    if report.get("n_ignored_files"):
        lines.append(f"ignored:   {report['n_ignored_files']} files that are not DICOM images "
                     f"(e.g. {report['ignored_files'][0]['file']})")
    print("\n".join(lines))
    return 0
