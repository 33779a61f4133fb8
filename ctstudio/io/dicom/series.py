"""Finding DICOM series: read the header of every file in a folder, group by SeriesInstanceUID,
choose one (the caller's UID, else the largest CT series), or check a single file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctstudio.errors import InputError, NotAnImageError, SeriesError, VolumeReadError
from ctstudio.io.dicom.header import (
    SliceHeader,
    check_image_header,
    looks_like_dicom,
    looks_like_raw_dataset,
    read_slice_header,
)
from ctstudio.jobs import Progress, check_cancel

#: A folder holding more files than this is not a DICOM series folder (e.g. someone's home folder).
MAX_FOLDER_FILES = 50_000
#: at most about this many progress events per pass over the files
EVENTS_PER_PASS = 100


@dataclass
class SeriesInfo:
    """One series found in a folder: its UID, modality, description and the headers of its files."""

    uid: str
    modality: str
    description: str
    headers: list[SliceHeader]

    @property
    def n_files(self) -> int:
        return len(self.headers)

    def to_dict(self) -> dict[str, Any]:
        h0 = self.headers[0]
        return {"series_instance_uid": self.uid, "modality": self.modality, "description": self.description,
                "n_files": self.n_files, "rows": h0.rows, "columns": h0.columns}


@dataclass
class FolderScan:
    """Every series found under a folder, largest first, and the files that were not DICOM images."""

    folder: Path
    series: list[SeriesInfo]
    ignored: list[tuple[str, str]]  # (file, reason)

    @property
    def n_files(self) -> int:
        """How many files were read (the series' files and the ignored ones)."""
        return sum(s.n_files for s in self.series) + len(self.ignored)


def report_every(total: int) -> int:
    """Send a progress event every this many files (about :data:`EVENTS_PER_PASS` per pass)."""
    return max(1, total // EVENTS_PER_PASS)


def list_files(folder: Path) -> list[Path]:
    """The regular files under ``folder`` (recursively, sorted; hidden files and DICOMDIR left out)."""
    out = []
    for root, dirs, files in os.walk(folder):
        if len(out) > MAX_FOLDER_FILES:
            raise InputError(f"the folder holds more than {MAX_FOLDER_FILES} files; that is not one DICOM series",
                             path=folder, hint="point at the folder of the series itself")
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            p = Path(root) / name
            if p.is_file():  # skips FIFOs, sockets and devices (opening a FIFO would block)
                out.append(p)
    return out


def is_empty_parse(h: SliceHeader) -> bool:
    """A force-parsed file that yielded nothing a DICOM image has (text, random bytes...)."""
    return h.pixel_offset < 0 and h.rows == 0 and not h.series_uid and not h.modality


def _header_or_reason(p: Path) -> tuple[SliceHeader | None, tuple[str, str] | None]:
    """One file of a folder: its header, or why it was left out. A damaged DICOM file is an error."""
    force = not looks_like_dicom(p)
    if force and not looks_like_raw_dataset(p):
        return None, (str(p), "not DICOM")
    try:
        h = read_slice_header(p, force=force)
    except VolumeReadError as exc:
        if not force:  # a DICOM file (it has the marker) that is damaged: say so, do not skip it
            raise SeriesError(f"a DICOM file in the folder is damaged: {exc.message}", path=p,
                              hint="move the damaged file out of the folder, or copy the series again") from None
        return None, (str(p), "not DICOM")
    if force and is_empty_parse(h):
        return None, (str(p), "not DICOM")
    return h, None


def scan_folder(folder, progress: Progress | None = None, cancel=None) -> FolderScan:
    """Read the header of every file under ``folder`` and group the DICOM images by series.

    ``progress``: a :class:`~ctstudio.jobs.Progress` that gets ``"scan"`` events; its ``total`` is set to
    twice the number of files (each file may be read again for its pixels: the reader lowers it once the
    series is chosen); ``cancel`` is checked before every file.
    """
    folder = Path(folder)
    files = list_files(folder)
    if not files:
        raise NotAnImageError("the folder is empty (no files)", path=folder,
                              hint="point at the folder that holds the DICOM slices")
    every = report_every(len(files))
    if progress is not None:
        progress.total = 2 * len(files)
    results = []  # sequential: GIL-bound Python parsing, threads only slow it down (measured)
    for n, p in enumerate(files):
        check_cancel(cancel, f"reading stopped while scanning the folder ({n} of {len(files)} files)")
        if progress is not None and n % every == 0:
            progress.event("scan", n, path=str(folder))
        results.append(_header_or_reason(p))
    groups: dict[str, list[SliceHeader]] = {}
    ignored: list[tuple[str, str]] = []
    for h, reason in results:
        if h is None:
            ignored.append(reason)
        else:
            groups.setdefault(h.series_uid, []).append(h)
    series = []
    for uid, hs in groups.items():
        modalities = sorted({h.modality for h in hs})
        descriptions = sorted({h.description for h in hs})
        series.append(SeriesInfo(uid=uid, modality="/".join(modalities),
                                 description=" / ".join(d for d in descriptions if d), headers=hs))
    series.sort(key=lambda s: (-s.n_files, s.uid))
    return FolderScan(folder=folder, series=series, ignored=ignored)


def list_series(folder) -> list[dict[str, Any]]:
    """The DICOM series under ``folder``: UID, modality, description, number of files (largest first)."""
    return [s.to_dict() for s in scan_folder(folder).series]


def single_file_header(path: Path, series_uid: str | None = None) -> SliceHeader:
    """The checked header of a single DICOM file given on its own."""
    not_dicom = NotAnImageError("not a DICOM file (and not NIfTI / MHA / NRRD by its name)", path=path,
                                hint="give a DICOM file or folder, or a .nii.gz / .mha / .nrrd file")
    force = not looks_like_dicom(path)
    if force and path.stat().st_size > 0 and not looks_like_raw_dataset(path):
        raise not_dicom
    try:
        h = read_slice_header(path, force=force)
    except NotAnImageError:
        if force and path.stat().st_size > 0:  # no DICOM marker and unparseable: just not DICOM
            raise not_dicom from None
        raise
    if force and is_empty_parse(h):
        raise not_dicom
    check_image_header(h)
    if h.modality not in ("CT", ""):
        raise SeriesError(f"the file is {h.modality}, not CT", path=path, hint="ctstudio reads CT in HU")
    if series_uid and h.series_uid != series_uid:
        raise SeriesError(f"the file belongs to series {h.series_uid}, not {series_uid}", path=path)
    return h


def choose_series(scan: FolderScan, series_uid: str | None) -> SeriesInfo:
    """The series with ``series_uid``, else the largest CT series; refuse a folder without CT images."""
    folder = scan.folder
    if not scan.series:
        reasons: dict[str, int] = {}
        for _, reason in scan.ignored:
            key = reason.split(": ", 1)[-1].split("\n")[0]
            reasons[key] = reasons.get(key, 0) + 1
        summary = "; ".join(f"{n} x {r}" for r, n in list(reasons.items())[:4])
        raise NotAnImageError(f"no readable DICOM images in the folder ({len(scan.ignored)} files: {summary})",
                              path=folder, hint="point at a folder of DICOM slices, or at a NIfTI/MHA/NRRD file")
    listing = "; ".join(f"{s.uid or '<no UID>'} ({s.modality or '?'}, {s.n_files} files, {s.description!r})"
                        for s in scan.series)
    if series_uid:
        matches = [s for s in scan.series if s.uid == series_uid]
        if not matches:
            raise SeriesError(f"no series with UID {series_uid} here; found: {listing}", path=folder,
                              hint="pick one of the UIDs listed (ctstudio info PATH lists them)")
        chosen = matches[0]
    else:
        images = [s for s in scan.series if any(h.pixel_offset >= 0 for h in s.headers)]
        ct = [s for s in images if any(h.modality == "CT" for h in s.headers)]
        if not ct:
            if images:
                raise SeriesError(f"no CT series in the folder; found: {listing}", path=folder,
                                  hint="ctstudio reads CT; check the folder or choose a series by its UID")
            raise NotAnImageError(f"the DICOM files hold no images (no Pixel Data); found: {listing}",
                                  path=folder)
        chosen = ct[0]
    modalities = {h.modality for h in chosen.headers}
    if len(modalities) > 1:
        counts = {m: sum(h.modality == m for h in chosen.headers) for m in modalities}
        raise SeriesError(f"series {chosen.uid} mixes modalities {counts}", path=folder,
                          hint="the series is inconsistent; remove the files of the other modality")
    if chosen.modality not in ("CT", ""):
        raise SeriesError(f"series {chosen.uid} is {chosen.modality}, not CT", path=folder,
                          hint="ctstudio reads CT in Hounsfield units")
    return chosen


def select_headers(path: Path, series_uid: str | None, progress: Progress | None = None,
                   cancel=None) -> tuple[FolderScan | None, list[SliceHeader]]:
    """The checked headers of the series to read (a folder's chosen series, or one file), and the folder scan."""
    if not path.is_dir():
        return None, [single_file_header(path, series_uid)]
    scan = scan_folder(path, progress, cancel)
    chosen = choose_series(scan, series_uid)
    for h in chosen.headers:
        check_image_header(h)
    return scan, chosen.headers
