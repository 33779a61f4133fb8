"""The reading policy on the command line: ``--tilt`` and ``--spacing``, the same choices as the window's dialog."""

from __future__ import annotations

from ctstudio.io.policy import AS_ACQUIRED, CHOICES, ERROR, RESAMPLE


def add_reading_options(p, default: str = ERROR) -> None:
    """``--tilt`` / ``--spacing`` (and ``--resample`` for both) on a command that reads volumes."""
    what = {RESAMPLE: "resample onto a regular axial grid (recommended)",
            AS_ACQUIRED: "keep the slices as acquired (geometry approximate)", ERROR: "refuse"}
    p.add_argument("--tilt", choices=CHOICES, default=None,
                   help=f"a DICOM series acquired with gantry tilt: {'; '.join(f'{c}: {w}' for c, w in what.items())} "
                        f"(default: {default})")
    p.add_argument("--spacing", choices=CHOICES, default=None,
                   help=f"a DICOM series with uneven slice spacing or missing slices: same choices (default: {default})")
    p.add_argument("--resample", action="store_true", help="short for --tilt resample --spacing resample")
    p.set_defaults(_reading_default=default)


def reading_options(args) -> dict:
    """The keyword options for :func:`ctstudio.io.read_volume` from the parsed arguments."""
    default = RESAMPLE if args.resample else args._reading_default
    return {"tilt": args.tilt or default, "spacing": args.spacing or default}
