"""``ctstudio app [PATH]``: open the window (also what plain ``ctstudio`` and ``ctstudio PATH`` do)."""

from __future__ import annotations

NAME = "app"
HELP = "open the ctstudio window (optionally on a volume)"


def add_arguments(p) -> None:
    p.add_argument("path", nargs="?", help="a volume to open: DICOM folder or file, NIfTI, MHA or NRRD")
    p.add_argument("--series", metavar="UID", help="SeriesInstanceUID to open when a folder holds several series")


def run(args) -> int:
    from ctstudio.app.main import run_app

    return run_app(path=args.path, series_uid=args.series)
