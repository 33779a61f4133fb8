"""``ctstudio calibrate IN -o OUT [--model NAME] [--method icnet|histogram]``."""

from __future__ import annotations

NAME = "calibrate"
HELP = "calibrate the slice intensities of a (generated) volume with IC-Net or histogram matching"
DESCRIPTION = (
    "Calibrate each slice against the calibrated slice before it, going in the inferior direction; the most "
    "superior slice is the anchor and is kept. Only pixels inside the IC-Net ROI [-150, 150] HU change."
)


def add_arguments(p) -> None:
    from ctstudio.commands._reading import add_reading_options

    add_reading_options(p)
    p.add_argument("input", help="the volume to calibrate")
    p.add_argument("-o", "--output", required=True, help="output volume")
    p.add_argument("--model", default=None, help="IC-Net name or path (default: the bundled demo)")
    p.add_argument("--method", choices=["icnet", "histogram"], default="icnet",
                   help="icnet (default) or the histogram-matching baseline (scikit-image)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from ctstudio.commands._drive import drive
    from ctstudio.commands._reading import reading_options
    from ctstudio.pipelines.outputs import check_output
    from ctstudio.io import read_volume, write_volume
    from ctstudio.pipelines.calibrate import CalibrateRequest, calibrate

    check_output(args.output, [args.input], args.overwrite)
    vol = read_volume(args.input, **reading_options(args))
    out = drive(calibrate(CalibrateRequest(vol, args.method, args.model, args.device)), args.quiet, "calibrating")
    path = write_volume(out, args.output, overwrite=args.overwrite)
    changed = int((out.array != vol.array).sum())
    print(f"wrote {path}: {args.method}, {changed} voxels changed of {vol.array.size}")
    return 0
