"""Outputs never destroy work: one check, used by every command and tab that writes a volume.

An output that exists is refused unless the user said to replace it (``--overwrite`` on the command line,
a confirmation in the window), and an output is never one of the job's own inputs (not even with
``--overwrite``): writing a conversion onto the scan it was made from would lose the original.
"""

from __future__ import annotations

import os
from pathlib import Path

from ctstudio.errors import InputError


def _same_place(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _inside(child: Path, folder: Path) -> bool:
    try:
        child.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def check_output(output, inputs=(), overwrite: bool = False, flag: str = "--overwrite") -> Path:
    """``output`` as a Path if it may be written; else an InputError saying why and what to do.

    ``inputs``: the paths the job reads (None entries are skipped). A DICOM input folder also protects the files
    in it, and an output folder that holds an input is refused.
    """
    out = Path(output).expanduser()
    for raw in inputs:
        if raw is None:
            continue
        src = Path(raw).expanduser()
        if _same_place(out, src) or (src.is_dir() and _inside(out, src)) or (out.is_dir() and _inside(src, out)):
            raise InputError("the output would overwrite an input of this job", path=out,
                             hint=f"write to another file or folder than {src}")
    if out.exists() and not overwrite:
        what = "folder" if out.is_dir() else "file"
        raise InputError(f"the output {what} exists", path=out,
                         hint=f"choose another name, or replace it with {flag}")
    return out
