"""``ctstudio info PATH [--json]``: what a volume is (shape, spacing, HU, metadata, series, geometry checks)."""

from __future__ import annotations

import json

NAME = "info"
HELP = "print shape, spacing, HU range, kernel and geometry checks of a volume"


def add_arguments(p) -> None:
    p.add_argument("path", help="DICOM folder or file, NIfTI, MHA or NRRD")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--series", metavar="UID", help="SeriesInstanceUID, when a folder holds several series")


def run(args) -> int:
    from ctstudio.io.api import inspect_path

    report = inspect_path(args.path, series_uid=args.series)
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
    for s in report.get("series", []):
        lines.append(f"  series {s['series_instance_uid']}: {s['modality']} {s['n_files']} files {s['description']!r}")
    print("\n".join(lines))
    return 0
