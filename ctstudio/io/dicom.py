"""DICOM: read a CT series (or a single file) into a HU :class:`Volume`; write a Volume as a CT series.

Reading happens in two passes:

1. **Headers** of every file (``stop_before_pixels``): group by SeriesInstanceUID, choose a
   series (``series_uid=``; default the largest CT series), sort its slices by
   ImagePositionPatient projected on the slice normal (row x column of ImageOrientationPatient;
   never by file name or InstanceNumber), and check the geometry: duplicate positions, missing
   slices (a gap of about 2x, 3x... the usual step), non-uniform steps and gantry tilt.
2. **Pixels**, decoded in parallel (a thread pool). Uncompressed little-endian files are read
   straight from the file at the Pixel Data offset found in pass 1 (``numpy.fromfile`` releases
   the GIL); compressed ones (JPEG 2000, JPEG-LS, RLE, ...) go through pydicom + pylibjpeg.
   Each slice is rescaled to HU (slope/intercept) and must fit int16.

Tilt and non-uniform spacing are reported (:class:`GeometryError`) or resampled onto a regular
axial grid, by the caller's choice (``tilt=`` / ``nonuniform=``, ``"report"`` or ``"resample"``).

Writing builds one CT Image Storage file per slice with pydicom (highdicom has no constructor for
the classic single-frame CT IOD); the series is written into a temporary folder and renamed into
place, so a crash never leaves a half-written series under the final name.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctstudio.errors import (
    GeometryError,
    InputError,
    NotAnImageError,
    SeriesError,
    ValueRangeError,
    VolumeReadError,
    VolumeWriteError,
)
from ctstudio.volume import Metadata, Provenance, Volume

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_RAW_SYNTAXES = {"1.2.840.10008.1.2": True, "1.2.840.10008.1.2.1": False}  # uid -> implicit VR
_PIXEL_TAG = 0x7FE00010
_EXPLICIT_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UR", b"UT", b"UN"}
#: Fraction of physical memory one volume may take before we refuse (a "huge declared size").
MEMORY_FRACTION = 0.6
DUPLICATE_TOL_MM = 1e-3


# ---------------------------------------------------------------------------------------------
# pass 1: headers
# ---------------------------------------------------------------------------------------------
@dataclass
class _Header:
    path: Path
    series_uid: str = ""
    modality: str = ""
    description: str = ""
    rows: int = 0
    columns: int = 0
    frames: int = 1
    samples: int = 1
    bits_allocated: int = 16
    bits_stored: int = 16
    signed: bool = False
    slope: float = 1.0
    intercept: float = 0.0
    position: np.ndarray | None = None
    orientation: np.ndarray | None = None
    pixel_spacing: tuple[float, float] | None = None
    transfer_syntax: str = ""
    implicit: bool = False
    big_endian: bool = False
    pixel_offset: int = -1  # offset of the Pixel Data element, -1 when there is none
    raw_value_offset: int = -1  # where raw little-endian pixels start (fast path), -1 otherwise
    raw_length: int = -1
    instance: int | None = None
    gantry_tilt: float | None = None
    spacing_between: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    available: int = -1  # bytes present after the Pixel Data header (raw pixels only)
    synthetic_model: tuple[str, str] | None = None  # (model, version) of a series marked Synthetic Data = YES


def _float(value, default=None):
    try:
        if value is None or value == "":
            return default
        return float(value)
    except (TypeError, ValueError):
        return default


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else ""
    return str(value).strip()


def looks_like_dicom(path: Path) -> bool:
    """The 'DICM' magic at byte 128 (files without a preamble are tried by force elsewhere)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


_T = {
    "SpecificCharacterSet": 0x00080005, "SyntheticData": 0x0008001C, "Modality": 0x00080060,
    "Manufacturer": 0x00080070, "SeriesDescription": 0x0008103E, "ManufacturerModelName": 0x00081090,
    "BodyPartExamined": 0x00180015, "SliceThickness": 0x00180050, "KVP": 0x00180060,
    "SpacingBetweenSlices": 0x00180088, "GantryDetectorTilt": 0x00181120, "ConvolutionKernel": 0x00181210,
    "SeriesInstanceUID": 0x0020000E, "InstanceNumber": 0x00200013, "ImagePositionPatient": 0x00200032,
    "ImageOrientationPatient": 0x00200037, "SamplesPerPixel": 0x00280002, "NumberOfFrames": 0x00280008,
    "Rows": 0x00280010, "Columns": 0x00280011, "PixelSpacing": 0x00280030, "BitsAllocated": 0x00280100,
    "BitsStored": 0x00280101, "PixelRepresentation": 0x00280103, "RescaleIntercept": 0x00281052,
    "RescaleSlope": 0x00281053,
}
_WANTED = frozenset(_T.values())
_US = {"SamplesPerPixel", "Rows", "Columns", "BitsAllocated", "BitsStored", "PixelRepresentation"}


def _read_header(path: Path, force: bool = False) -> _Header:
    """Header of one file: the fast walker for ordinary files, pydicom for anything else."""
    if not force:
        h = _read_header_fast(Path(path))
        if h is not None:
            return h
    return _read_header_pydicom(Path(path), force=force)


def _read_header_fast(path: Path) -> _Header | None:
    from ctstudio.io import _dcmfast

    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            res = _dcmfast.walk(fh, size, _WANTED)
    except _dcmfast.Truncated as exc:
        raise NotAnImageError(f"the DICOM file is truncated: {exc}", path=path,
                              hint="the copy was cut short; copy or export the file again") from None
    except OSError:
        return None
    if res is None:
        return None
    ts, raw, pixel = res
    if raw.get(_T["SyntheticData"], b"").strip(b" \x00").upper() == b"YES":
        return None  # pydicom reads the Contributing Equipment Sequence for the provenance
    enc = "utf-8" if b"192" in raw.get(_T["SpecificCharacterSet"], b"") else "latin-1"

    def txt(name: str) -> list[str]:
        v = raw.get(_T[name])
        if v is None:
            return []
        return [p.strip(" \x00") for p in v.decode(enc, "replace").split("\\")]

    def first(name: str) -> str:
        v = txt(name)
        return v[0] if v else ""

    def num(name: str):
        if name in _US:
            v = raw.get(_T[name])
            return int.from_bytes(v[:2], "little") if v and len(v) >= 2 else None
        return _float(first(name))

    def vec(name: str, n: int):
        v = txt(name)
        if len(v) != n:
            return None
        try:
            return np.array([float(x) for x in v])
        except ValueError:
            return None

    try:
        h = _Header(path=path, transfer_syntax=ts, implicit=ts == _dcmfast.IMPLICIT_LE)
        h.series_uid = first("SeriesInstanceUID")
        h.modality = first("Modality")
        h.description = first("SeriesDescription")
        h.rows = num("Rows") or 0
        h.columns = num("Columns") or 0
        h.frames = int(num("NumberOfFrames") or 1)
        h.samples = num("SamplesPerPixel") or 1
        h.bits_allocated = num("BitsAllocated") or 16
        bs = num("BitsStored")
        h.bits_stored = bs if bs else h.bits_allocated
        h.signed = num("PixelRepresentation") == 1
        h.slope = num("RescaleSlope") if num("RescaleSlope") is not None else 1.0
        h.intercept = num("RescaleIntercept") or 0.0
        h.position = vec("ImagePositionPatient", 3)
        h.orientation = vec("ImageOrientationPatient", 6)
        ps = vec("PixelSpacing", 2)
        h.pixel_spacing = (float(ps[0]), float(ps[1])) if ps is not None else None
        inst = num("InstanceNumber")
        h.instance = int(inst) if inst is not None else None
        h.gantry_tilt = num("GantryDetectorTilt")
        h.spacing_between = num("SpacingBetweenSlices")
        h.metadata = {
            "modality": h.modality, "kernel": first("ConvolutionKernel"), "series_description": h.description,
            "slice_thickness": num("SliceThickness"), "manufacturer": first("Manufacturer"),
            "manufacturer_model": first("ManufacturerModelName"), "kvp": num("KVP"),
            "body_part": first("BodyPartExamined"),
        }
    except (ValueError, TypeError, OverflowError):
        return None
    if pixel is not None:
        h.pixel_offset = pixel[0]
        if ts in _RAW_SYNTAXES and pixel[2] != 0xFFFFFFFF:
            h.raw_value_offset, h.raw_length = pixel[1], pixel[2]
            h.available = size - pixel[1]
    return h


def _read_header_pydicom(path: Path, force: bool = False) -> _Header:
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise VolumeReadError(f"cannot read the file ({exc.strerror})", path=path) from None
    if size == 0:
        raise NotAnImageError("the file is empty (0 bytes)", path=path)
    try:
        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged header gives an error below, not a wall of warnings
            ds = pydicom.dcmread(fh, stop_before_pixels=True, force=force)
            pixel_offset = fh.tell()
            head = fh.read(12)
    except InvalidDicomError:
        raise NotAnImageError("not a DICOM file (no 'DICM' marker)", path=path,
                              hint="give a DICOM file or folder, or a NIfTI / MHA / NRRD file") from None
    except IsADirectoryError:
        raise VolumeReadError("expected a file but found a folder", path=path) from None
    except PermissionError as exc:
        raise VolumeReadError(f"permission denied ({exc.strerror})", path=path,
                              hint="check the file's permissions") from None
    except OSError as exc:
        raise VolumeReadError(f"cannot read the file ({exc.strerror or exc})", path=path) from None
    except Exception as exc:  # pydicom raises many kinds on a damaged header
        raise NotAnImageError(f"the DICOM header is damaged or truncated ({type(exc).__name__}: {exc})",
                              path=path, hint="re-export or re-copy the file") from None
    meta = getattr(ds, "file_meta", None)
    h = _Header(path=path)
    h.transfer_syntax = str(getattr(meta, "TransferSyntaxUID", "") or "") if meta is not None else ""
    if not h.transfer_syntax:
        h.transfer_syntax = "1.2.840.10008.1.2"
    h.implicit = h.transfer_syntax == "1.2.840.10008.1.2"
    h.big_endian = h.transfer_syntax == "1.2.840.10008.1.2.2"
    try:
        h.series_uid = str(ds.get("SeriesInstanceUID", "") or "")
        h.modality = _text(ds.get("Modality", ""))
        h.description = _text(ds.get("SeriesDescription", ""))
        h.rows = int(ds.get("Rows", 0) or 0)
        h.columns = int(ds.get("Columns", 0) or 0)
        h.frames = int(_float(ds.get("NumberOfFrames", 1), 1) or 1)
        h.samples = int(ds.get("SamplesPerPixel", 1) or 1)
        h.bits_allocated = int(ds.get("BitsAllocated", 16) or 16)
        h.bits_stored = int(ds.get("BitsStored", h.bits_allocated) or h.bits_allocated)
        h.signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
        h.slope = _float(ds.get("RescaleSlope"), 1.0)
        h.intercept = _float(ds.get("RescaleIntercept"), 0.0)
        ipp = ds.get("ImagePositionPatient")
        iop = ds.get("ImageOrientationPatient")
        if ipp is not None and len(ipp) == 3:
            h.position = np.array([float(v) for v in ipp])
        if iop is not None and len(iop) == 6:
            h.orientation = np.array([float(v) for v in iop])
        ps = ds.get("PixelSpacing")
        if ps is not None and len(ps) == 2:
            h.pixel_spacing = (float(ps[0]), float(ps[1]))
        inst = ds.get("InstanceNumber")
        h.instance = int(inst) if inst not in (None, "") else None
        h.gantry_tilt = _float(ds.get("GantryDetectorTilt"))
        h.spacing_between = _float(ds.get("SpacingBetweenSlices"))
        h.metadata = {
            "modality": h.modality,
            "kernel": _text(ds.get("ConvolutionKernel", "")),
            "series_description": h.description,
            "slice_thickness": _float(ds.get("SliceThickness")),
            "manufacturer": _text(ds.get("Manufacturer", "")),
            "manufacturer_model": _text(ds.get("ManufacturerModelName", "")),
            "kvp": _float(ds.get("KVP")),
            "body_part": _text(ds.get("BodyPartExamined", "")),
        }
        if _text(ds.get("SyntheticData", "")).upper() == "YES":
            model, version = "unknown model", ""
            for item in ds.get("ContributingEquipmentSequence", []) or []:
                if item.get("ManufacturerModelName"):
                    model, version = _text(item.ManufacturerModelName), _text(item.get("SoftwareVersions", ""))
            h.synthetic_model = (model, version)
    except Exception as exc:
        raise NotAnImageError(f"a DICOM header value cannot be read ({type(exc).__name__}: {exc})",
                              path=path, hint="the file is damaged; re-export it") from None
    if len(head) >= 8:
        tag = int.from_bytes(head[0:2], "little") << 16 | int.from_bytes(head[2:4], "little")
        if tag == _PIXEL_TAG:
            h.pixel_offset = pixel_offset
            if h.transfer_syntax in _RAW_SYNTAXES:
                if h.implicit:
                    length, start = int.from_bytes(head[4:8], "little"), pixel_offset + 8
                elif head[4:6] in _EXPLICIT_LONG_VRS and len(head) == 12:
                    length, start = int.from_bytes(head[8:12], "little"), pixel_offset + 12
                else:
                    length, start = int.from_bytes(head[6:8], "little"), pixel_offset + 8
                if length != 0xFFFFFFFF:
                    h.raw_length = length
                    h.raw_value_offset = start
                    h.available = size - start
    return h


def _check_image_header(h: _Header) -> None:
    """Refuse, with a specific message, a file whose header cannot describe a CT image."""
    if h.pixel_offset < 0:
        raise NotAnImageError("the DICOM file holds no image (no Pixel Data element)", path=h.path,
                              hint="it may be a report, structure set or DICOMDIR; give the image files")
    if h.rows <= 0 or h.columns <= 0:
        raise NotAnImageError(f"Rows/Columns missing or zero ({h.rows} x {h.columns})", path=h.path)
    if h.samples != 1:
        raise VolumeReadError(f"the image has {h.samples} samples per pixel (colour); CT is greyscale",
                              path=h.path)
    if h.frames != 1:
        raise VolumeReadError(f"multi-frame DICOM ({h.frames} frames) is not supported yet",
                              path=h.path, hint="export the series as single-frame files")
    if h.bits_allocated not in (8, 16, 32):
        raise VolumeReadError(f"unsupported BitsAllocated {h.bits_allocated}", path=h.path)
    if 0 <= h.available < h.raw_length:
        raise NotAnImageError(f"the file is truncated: Pixel Data declares {h.raw_length} bytes but only "
                              f"{max(h.available, 0)} are there", path=h.path,
                              hint="the copy was cut short; copy or export the file again")
    if h.raw_length >= 0:
        expected = h.rows * h.columns * h.bits_allocated // 8
        if h.raw_length < expected:
            raise NotAnImageError(
                f"Pixel Data holds {h.raw_length} bytes but Rows x Columns = {h.rows} x {h.columns} "
                f"at {h.bits_allocated} bits needs {expected}", path=h.path,
                hint="the header declares a bigger image than the file holds; the file is damaged")
    if not (h.slope and math.isfinite(h.slope) and math.isfinite(h.intercept)):
        raise ValueRangeError(f"invalid rescale slope/intercept ({h.slope}, {h.intercept})", path=h.path)


# ---------------------------------------------------------------------------------------------
# scanning a folder
# ---------------------------------------------------------------------------------------------
@dataclass
class SeriesInfo:
    uid: str
    modality: str
    description: str
    headers: list[_Header]

    @property
    def n_files(self) -> int:
        return len(self.headers)

    def to_dict(self) -> dict[str, Any]:
        h0 = self.headers[0]
        return {"series_instance_uid": self.uid, "modality": self.modality, "description": self.description,
                "n_files": self.n_files, "rows": h0.rows, "columns": h0.columns}


@dataclass
class Scan:
    folder: Path
    series: list[SeriesInfo]
    ignored: list[tuple[str, str]]  # (file, reason)


#: A folder holding more files than this is not a DICOM series folder (e.g. someone's home folder).
MAX_FOLDER_FILES = 50_000


def _looks_like_raw_dataset(path: Path) -> bool:
    """A DICOM dataset without the 128-byte preamble starts with a group 0002 or 0008 tag."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return True  # let the header reader raise the proper error
    return len(head) == 4 and head[:2] in (b"\x02\x00", b"\x08\x00")


def _iter_files(folder: Path) -> list[Path]:
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


def _parallel(fn, items: list, workers: int | None):
    workers = _workers(workers, len(items))
    if workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def _workers(workers: int | None, n: int) -> int:
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    return max(1, min(int(workers), n))


def _progress(callback, cancel, stage: str, i: int, n: int) -> None:
    """k-diffusion style dict callback, and a cancel flag (a callable or anything with is_set())."""
    if cancel is not None and (cancel.is_set() if hasattr(cancel, "is_set") else cancel()):
        from ctstudio.errors import Cancelled

        raise Cancelled(f"reading stopped during {stage} ({i} of {n} files)")
    if callback is not None:
        callback({"stage": stage, "i": i, "n": n})


def scan_folder(folder, workers: int | None = None, callback=None, cancel=None) -> Scan:
    """Read the header of every file under ``folder`` and group the DICOM images by series."""
    folder = Path(folder)
    files = _iter_files(folder)
    if not files:
        raise NotAnImageError("the folder is empty (no files)", path=folder,
                              hint="point at the folder that holds the DICOM slices")

    def one(p: Path):
        force = not looks_like_dicom(p)
        if force and not _looks_like_raw_dataset(p):
            return None, (str(p), "not DICOM")
        try:
            h = _read_header(p, force=force)
        except VolumeReadError as exc:
            if not force:  # a DICOM file (it has the marker) that is damaged: say so, do not skip it
                raise SeriesError(f"a DICOM file in the folder is damaged: {exc.message}", path=p,
                                  hint="move the damaged file out of the folder, or copy the series again") from None
            return None, (str(p), "not DICOM")
        if force and _not_dicom(h):
            return None, (str(p), "not DICOM")
        return h, None

    results = []  # sequential: GIL-bound Python parsing, threads only slow it down (measured)
    for n, p in enumerate(files):
        if n % 32 == 0:
            _progress(callback, cancel, "headers", n, len(files))
        results.append(one(p))
    groups: dict[str, list[_Header]] = {}
    ignored: list[tuple[str, str]] = []
    for h, bad in results:
        if h is None:
            ignored.append(bad)
        else:
            groups.setdefault(h.series_uid, []).append(h)
    series = []
    for uid, hs in groups.items():
        mods = sorted({h.modality for h in hs})
        descs = sorted({h.description for h in hs})
        series.append(SeriesInfo(uid=uid, modality="/".join(mods), description=" / ".join(d for d in descs if d),
                                 headers=hs))
    series.sort(key=lambda s: (-s.n_files, s.uid))
    return Scan(folder=folder, series=series, ignored=ignored)


def _not_dicom(h: _Header) -> bool:
    """A force-parsed file that yielded nothing a DICOM image has (text, random bytes...)."""
    return h.pixel_offset < 0 and h.rows == 0 and not h.series_uid and not h.modality


def _single_file_header(path: Path, series_uid: str | None = None) -> _Header:
    force = not looks_like_dicom(path)
    if force and path.stat().st_size > 0 and not _looks_like_raw_dataset(path):
        raise NotAnImageError("not a DICOM file (and not NIfTI / MHA / NRRD by its name)", path=path,
                              hint="give a DICOM file or folder, or a .nii.gz / .mha / .nrrd file")
    try:
        h = _read_header(path, force=force)
    except NotAnImageError:
        if force and path.stat().st_size > 0:  # no DICOM marker and unparseable: just not DICOM
            raise NotAnImageError("not a DICOM file (and not NIfTI / MHA / NRRD by its name)", path=path,
                                  hint="give a DICOM file or folder, or a .nii.gz / .mha / .nrrd file") from None
        raise
    if force and _not_dicom(h):
        raise NotAnImageError("not a DICOM file (and not NIfTI / MHA / NRRD by its name)", path=path,
                              hint="give a DICOM file or folder, or a .nii.gz / .mha / .nrrd file")
    _check_image_header(h)
    if h.modality not in ("CT", ""):
        raise SeriesError(f"the file is {h.modality}, not CT", path=path, hint="ctstudio reads CT in HU")
    if series_uid and h.series_uid != series_uid:
        raise SeriesError(f"the file belongs to series {h.series_uid}, not {series_uid}", path=path)
    return h


def list_series(folder, workers: int | None = None) -> list[dict[str, Any]]:
    """The DICOM series under ``folder``: UID, modality, description, number of files (largest first)."""
    return [s.to_dict() for s in scan_folder(folder, workers).series]


def _choose_series(scan: Scan, series_uid: str | None) -> SeriesInfo:
    folder = scan.folder
    if not scan.series:
        reasons = {}
        for _, reason in scan.ignored:
            reasons.setdefault(reason.split(": ", 1)[-1].split("\n")[0], 0)
            reasons[reason.split(": ", 1)[-1].split("\n")[0]] += 1
        summary = "; ".join(f"{n} x {r}" for r, n in list(reasons.items())[:4])
        raise NotAnImageError(f"no readable DICOM images in the folder ({len(scan.ignored)} files: {summary})",
                              path=folder, hint="point at a folder of DICOM slices, or at a NIfTI/MHA/NRRD file")
    listing = "; ".join(f"{s.uid or '<no UID>'} ({s.modality or '?'}, {s.n_files} files, {s.description!r})"
                        for s in scan.series)
    if series_uid:
        for s in scan.series:
            if s.uid == series_uid:
                chosen = s
                break
        else:
            raise SeriesError(f"no series with UID {series_uid} here; found: {listing}", path=folder,
                              hint="pick one of the UIDs listed (ctstudio info PATH lists them)")
    else:
        images = [s for s in scan.series if any(h.pixel_offset >= 0 for h in s.headers)]
        ct = [s for s in images if any(h.modality == "CT" for h in s.headers)]
        if not ct:
            if images:
                raise SeriesError(f"no CT series in the folder; found: {listing}", path=folder,
                                  hint="ctstudio reads CT; check the folder or give series_uid=")
            raise NotAnImageError(f"the DICOM files hold no images (no Pixel Data); found: {listing}",
                                  path=folder)
        chosen = ct[0]
    mods = {h.modality for h in chosen.headers}
    if len(mods) > 1:
        counts = {m: sum(h.modality == m for h in chosen.headers) for m in mods}
        raise SeriesError(f"series {chosen.uid} mixes modalities {counts}", path=folder,
                          hint="the series is inconsistent; remove the files of the other modality")
    if chosen.modality not in ("CT", ""):
        raise SeriesError(f"series {chosen.uid} is {chosen.modality}, not CT", path=folder,
                          hint="ctstudio reads CT in Hounsfield units")
    return chosen


# ---------------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------------
@dataclass
class Geometry:
    """The geometry of a sorted series and what is wrong with it (nothing, ideally)."""

    headers: list[_Header]  # sorted along the slice normal
    row: np.ndarray
    col: np.ndarray
    normal: np.ndarray
    pixel_spacing_xy: tuple[float, float]
    positions: np.ndarray  # distance of each slice along the stacking direction, from the first (mm)
    step: np.ndarray  # mean LPS step vector between slices
    z_spacing: float
    tilt_deg: float = 0.0
    tilted: bool = False
    nonuniform: bool = False
    max_step_deviation_mm: float = 0.0
    missing: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    steps_mm: list[float] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        st = np.asarray(self.steps_mm) if self.steps_mm else np.zeros(0)
        return {
            "n_slices": len(self.headers),
            "tilt_deg": round(self.tilt_deg, 4),
            "tilted": self.tilted,
            "slice_spacing_mm": round(self.z_spacing, 6),
            "spacing_uniform": not self.nonuniform and not self.missing,
            "step_min_mm": round(float(st.min()), 6) if st.size else None,
            "step_max_mm": round(float(st.max()), 6) if st.size else None,
            "missing_slices": self.missing,
            "duplicate_positions": [list(d) for d in self.duplicates],
        }


def _orthonormal(iop: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    r, c = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    nr, nc = np.linalg.norm(r), np.linalg.norm(c)
    if nr < 1e-6 or nc < 1e-6 or abs(r @ c) / (nr * nc) > 1e-3:
        raise GeometryError(f"ImageOrientationPatient {list(iop)} is not two orthogonal unit vectors", path=path)
    return r / nr, c / nc


def analyse(headers: list[_Header], folder: Path | None = None) -> Geometry:
    """Sort ``headers`` along the slice normal and measure tilt, spacing, gaps and duplicates."""
    where = folder or headers[0].path
    h0 = headers[0]
    ps = h0.pixel_spacing or (1.0, 1.0)
    if h0.orientation is None:
        if len(headers) > 1:
            raise SeriesError(f"{len(headers)} slices but no ImageOrientationPatient: the slices cannot be ordered",
                              path=where)
        row, col = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    else:
        row, col = _orthonormal(h0.orientation, h0.path)
    normal = np.cross(row, col)
    if len(headers) == 1:
        dz = abs(h0.metadata.get("slice_thickness") or h0.spacing_between or 1.0) or 1.0
        return Geometry(headers=list(headers), row=row, col=col, normal=normal, pixel_spacing_xy=(ps[1], ps[0]),
                        positions=np.zeros(1), step=normal * dz, z_spacing=float(dz))
    sizes = {}
    for h in headers:
        sizes.setdefault((h.rows, h.columns), []).append(h.path.name)
    if len(sizes) > 1:
        desc = "; ".join(f"{r}x{c}: {len(v)} files (e.g. {v[0]})" for (r, c), v in sizes.items())
        raise SeriesError(f"the slices of one series differ in size (Rows x Columns): {desc}", path=where,
                          hint="remove the odd files (a localizer?) or choose another series")
    no_pos = [h.path.name for h in headers if h.position is None or h.orientation is None]
    if no_pos:
        raise SeriesError(f"{len(no_pos)} slices lack ImagePositionPatient/ImageOrientationPatient "
                          f"(e.g. {no_pos[0]}): the slices cannot be ordered", path=where)
    for h in headers:
        if np.max(np.abs(h.orientation - h0.orientation)) > 1e-4:
            raise SeriesError(f"the slice orientation changes within the series ({h0.path.name}: "
                              f"{list(h0.orientation)}, {h.path.name}: {list(h.orientation)})", path=where,
                              hint="this is not one stack of parallel slices")
    pos = np.array([h.position for h in headers])
    proj = pos @ normal
    order = np.lexsort((np.array([h.instance if h.instance is not None else 0 for h in headers]), proj))
    headers = [headers[i] for i in order]
    pos, proj = pos[order], proj[order]
    # duplicates: two slices at the same place
    diffs = np.diff(proj)
    dups = [(headers[k].path.name, headers[k + 1].path.name) for k in np.nonzero(diffs < DUPLICATE_TOL_MM)[0]
            if np.linalg.norm(pos[k + 1] - pos[k]) < DUPLICATE_TOL_MM * 10]
    mean_step = (pos[-1] - pos[0]) / (len(headers) - 1)
    if np.linalg.norm(mean_step) < DUPLICATE_TOL_MM:
        unit = normal
    else:
        unit = mean_step / np.linalg.norm(mean_step)
    along = (pos - pos[0]) @ unit
    steps = np.diff(along)
    geo = Geometry(headers=headers, row=row, col=col, normal=normal, pixel_spacing_xy=(ps[1], ps[0]),
                   positions=along, step=mean_step, z_spacing=float(np.linalg.norm(mean_step)),
                   duplicates=dups, steps_mm=[float(s) for s in steps])
    if dups:
        return geo
    # tilt: the stack advances along `unit`, which is not the slice normal
    cosang = float(np.clip(abs(unit @ normal), -1, 1))
    geo.tilt_deg = math.degrees(math.acos(cosang))
    drift = float(np.linalg.norm((pos[-1] - pos[0]) - ((pos[-1] - pos[0]) @ normal) * normal))
    geo.tilted = drift > max(0.01, 0.05 * min(ps))
    if not geo.tilted:
        geo.tilt_deg = 0.0 if geo.tilt_deg < 1e-3 else geo.tilt_deg
    # missing slices and non-uniform steps
    m = float(np.median(steps))
    ratio = steps / m
    slots = np.rint(ratio).astype(int)
    for k in np.nonzero((slots >= 2) & (np.abs(ratio - slots) < 0.25))[0]:
        geo.missing.append({"after": headers[k].path.name, "before": headers[k + 1].path.name,
                            "gap_mm": round(float(steps[k]), 4), "n_missing": int(slots[k] - 1)})
    slots = np.maximum(slots, 1)
    slot_index = np.concatenate([[0], np.cumsum(slots)])
    if slot_index[-1] > 0:
        slope, icpt = np.polyfit(slot_index, along, 1)
        resid = along - (slope * slot_index + icpt)
        geo.max_step_deviation_mm = float(np.max(np.abs(steps - m)))
        tol = max(0.1 * m, 0.02)
        geo.nonuniform = bool(np.max(np.abs(resid)) > tol or np.any(np.abs(ratio - slots) >= 0.25))
        geo.z_spacing = float(slope) if not geo.nonuniform else m
    return geo


def _tilt_axes(geo: Geometry) -> np.ndarray:
    return np.stack([geo.row * geo.pixel_spacing_xy[0], geo.col * geo.pixel_spacing_xy[1], geo.step], axis=1)


# ---------------------------------------------------------------------------------------------
# pass 2: pixels
# ---------------------------------------------------------------------------------------------
def _decode(h: _Header) -> np.ndarray:
    """The stored pixel values of one slice (before rescale), as an integer array."""
    n = h.rows * h.columns
    if h.raw_value_offset >= 0 and h.bits_allocated in (8, 16, 32) and not h.big_endian:
        kind = ("i" if h.signed else "u") + str(h.bits_allocated // 8)
        dtype = np.dtype("<" + kind) if h.bits_allocated > 8 else np.dtype(kind)
        try:
            arr = np.fromfile(h.path, dtype=dtype, count=n, offset=h.raw_value_offset)
        except OSError as exc:
            raise VolumeReadError(f"cannot read the pixels ({exc})", path=h.path) from None
        if arr.size != n:
            raise NotAnImageError(f"the file is truncated: {arr.size} of {n} pixels present", path=h.path)
        arr = arr.reshape(h.rows, h.columns)
        bits = h.bits_allocated
        if h.bits_stored < bits:  # keep only the stored bits (sign-extended when signed)
            shift = bits - h.bits_stored
            if h.signed:
                arr = (arr << shift) >> shift
            else:
                arr = arr & ((1 << h.bits_stored) - 1)
        return arr
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns before failing; the error below says it all
            ds = pydicom.dcmread(h.path)
            return ds.pixel_array
    except Exception as exc:  # decoder errors: missing plug-in, damaged codestream, ...
        ts = h.transfer_syntax
        hint = "install pylibjpeg and pylibjpeg-openjpeg for JPEG 2000" if "4.9" in ts else "re-export the file uncompressed"
        raise NotAnImageError(f"cannot decode the pixels (transfer syntax {ts}: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})", path=h.path, hint=hint) from None


_I16 = np.iinfo(np.int16)


def _to_hu(raw: np.ndarray, h: _Header, out: np.ndarray) -> None:
    """Rescale one slice's stored values to HU into ``out`` (int16), refusing values beyond int16."""
    if raw.shape != (h.rows, h.columns):
        raise SeriesError(f"decoded pixels have shape {raw.shape}, header says {h.rows} x {h.columns}", path=h.path)
    exact = h.slope == 1.0 and float(h.intercept).is_integer()
    if exact and raw.dtype == np.int16 and h.intercept == 0:
        out[...] = raw
        return
    lo, hi = int(raw.min()), int(raw.max())
    lo, hi = sorted((lo * h.slope + h.intercept, hi * h.slope + h.intercept))
    if lo < _I16.min - 0.5 or hi > _I16.max + 0.5:
        raise ValueRangeError(
            f"after rescale (slope {h.slope:g}, intercept {h.intercept:g}) the values span [{lo:g}, {hi:g}], "
            f"beyond int16 [{_I16.min}, {_I16.max}]", path=h.path,
            hint="this does not look like CT in HU; check RescaleSlope/RescaleIntercept")
    if exact:
        np.add(raw, np.int32(int(h.intercept)), out=out, casting="unsafe")
    else:
        out[...] = np.clip(np.rint(raw.astype(np.float64) * h.slope + h.intercept), _I16.min, _I16.max)


def _memory_limit() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * MEMORY_FRACTION)
    except (ValueError, OSError, AttributeError):
        return 16 << 30


#: With ``workers >= 2``, compressed series at least this long are decoded in worker processes.
PROCESS_DECODE_MIN_FILES = 32


def _decode_path(path: str, transfer_syntax: str) -> np.ndarray:
    """Process-pool entry point: decode one compressed file (errors come back as ctstudio errors)."""
    h = _Header(path=Path(path), transfer_syntax=transfer_syntax)
    return _decode(h)


def _decode_in_processes(headers: list[_Header], compressed: list[int], n_proc: int) -> dict[int, np.ndarray]:
    """Decode the compressed slices in a forkserver pool; on a broken pool, return what is left undone."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    try:
        with ProcessPoolExecutor(max_workers=n_proc, mp_context=multiprocessing.get_context(method)) as pool:
            arrays = pool.map(_decode_path, [str(headers[k].path) for k in compressed],
                              [headers[k].transfer_syntax for k in compressed], chunksize=4)
            return dict(zip(compressed, arrays))
    except (BrokenProcessPool, RuntimeError, OSError):
        return {}  # the pool could not start or broke: decode here instead


def _load_pixels(headers: list[_Header], workers: int | None, callback=None, cancel=None) -> np.ndarray:
    """Decode and rescale every slice into one int16 array.

    Uncompressed slices are read sequentially straight into place (numpy.fromfile at the offset
    found in the header pass). Threads measured slower here (GIL-bound parsing, memory-bound
    copies); compressed slices go through pydicom + pylibjpeg, whose decoders hold the GIL, so the
    only parallel option is processes: opt in with ``workers >= 2`` (on a busy 2-core machine a
    process pool measured slower than decoding in place, hence not the default). Like any
    multiprocessing use, the calling script must guard its top level with
    ``if __name__ == "__main__":`` (the ``ctstudio`` entry point does).
    """
    h0 = headers[0]
    need = len(headers) * h0.rows * h0.columns * 2
    if need > _memory_limit():
        raise VolumeReadError(f"the volume would need {need / 2**30:.1f} GiB ({len(headers)} x {h0.rows} x "
                              f"{h0.columns}), more than this machine can hold", path=h0.path,
                              hint="the header may declare a wrong size, or crop the series first")
    out = np.empty((len(headers), h0.rows, h0.columns), dtype=np.int16)
    compressed = [k for k, h in enumerate(headers) if h.raw_value_offset < 0]
    decoded: dict[int, np.ndarray] = {}
    n_proc = 1 if workers is None else max(1, min(int(workers), len(compressed)))
    if len(compressed) >= PROCESS_DECODE_MIN_FILES and n_proc > 1:
        decoded = _decode_in_processes(headers, compressed, n_proc)
    for k, h in enumerate(headers):
        if k % 16 == 0:
            _progress(callback, cancel, "pixels", k, len(headers))
        raw = decoded.pop(k) if k in decoded else _decode(h)
        _to_hu(raw, h, out[k])
    return out


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def _metadata(h: _Header) -> Metadata:
    return Metadata.from_dict({k: v for k, v in h.metadata.items() if v not in (None, "")} | {"modality": h.modality or "CT"})


def read_dicom(path, series_uid: str | None = None, tilt: str = "report", nonuniform: str = "report",
               workers: int | None = None, callback=None, cancel=None, **_ignored) -> Volume:
    """Read a DICOM folder (one series of it) or a single DICOM file as a HU Volume.

    ``tilt`` / ``nonuniform``: ``"report"`` raises :class:`GeometryError` (or :class:`SeriesError`
    for missing slices) saying what is wrong; ``"resample"`` resamples onto a regular axial grid
    and records it in the provenance. ``workers``: >= 2 decodes long compressed series in that many
    processes (opt-in; see :func:`_load_pixels`).
    ``callback``: called with ``{"stage": "headers"|"pixels", "i": done, "n": total}``; ``cancel``:
    a callable or an Event, checked between files (raises :class:`~ctstudio.errors.Cancelled`).
    """
    for name, value in (("tilt", tilt), ("nonuniform", nonuniform)):
        if value not in ("report", "resample"):
            raise InputError(f"{name}= must be 'report' or 'resample', got {value!r}")
    path = Path(path)
    _, headers = _select(path, series_uid, workers, callback, cancel)
    return _build(analyse(headers, path), path, tilt, nonuniform, workers, callback, cancel)


def _select(path: Path, series_uid, workers, callback=None, cancel=None) -> tuple[Scan | None, list[_Header]]:
    """The headers of the series to read (checked to describe images), and the folder scan."""
    if not path.is_dir():
        return None, [_single_file_header(path, series_uid)]
    scan = scan_folder(path, workers, callback=callback, cancel=cancel)
    chosen = _choose_series(scan, series_uid)
    for h in chosen.headers:
        _check_image_header(h)
    return scan, chosen.headers


def _spacing_problem(geo: Geometry) -> str:
    if geo.missing:
        what = ", ".join(f"{m['n_missing']} between {m['after']} and {m['before']} (gap {m['gap_mm']} mm)"
                         for m in geo.missing)
        return f"missing slice(s): {what}; the usual step is {np.median(geo.steps_mm):.4g} mm"
    if geo.nonuniform:
        return f"non-uniform slice spacing: steps from {min(geo.steps_mm):.4g} to {max(geo.steps_mm):.4g} mm"
    return ""


def _build(geo: Geometry, where: Path, tilt: str, nonuniform: str, workers, callback=None, cancel=None) -> Volume:
    """Check the geometry (refusing what the caller wants reported), decode, resample if asked."""
    if geo.duplicates:
        a, b = geo.duplicates[0]
        raise SeriesError(f"{len(geo.duplicates)} duplicate slice position(s), e.g. {a} and {b} lie at the same place",
                          path=where, hint="the folder mixes two acquisitions or copies; keep one file per position")
    problem = _spacing_problem(geo)
    if problem and nonuniform == "report":
        cls = SeriesError if geo.missing and not geo.nonuniform else GeometryError
        raise cls(problem, path=where, hint="read with nonuniform='resample' (CLI: --resample) to interpolate "
                                            "onto a uniform grid")
    if geo.tilted and tilt == "report":
        gt = geo.headers[0].gantry_tilt
        raise GeometryError(f"gantry tilt of {geo.tilt_deg:.2f} degrees"
                            + (f" (GantryDetectorTilt {gt:g})" if gt is not None else "")
                            + ": the slices are not stacked along their normal", path=where,
                            hint="read with tilt='resample' (CLI: --resample) to resample onto an axial grid")
    steps: list[str] = []
    array = _load_pixels(geo.headers, workers, callback=callback, cancel=cancel)
    if problem:
        from ctstudio.imaging.resample import resample_z_positions, uniform_positions

        new_pos, dz = uniform_positions(geo.positions, float(np.median(geo.steps_mm)))
        array = resample_z_positions(array, geo.positions, new_pos)
        geo.step = geo.step / np.linalg.norm(geo.step) * dz
        geo.z_spacing = dz
        steps.append(f"resampled to uniform {dz:.4g} mm slice spacing ({problem})")
    origin = geo.headers[0].position if geo.headers[0].position is not None else np.zeros(3)
    if geo.tilted:
        from ctstudio.imaging.resample import axial_grid_for_sheared, resample_affine

        axes = _tilt_axes(geo)
        new_origin, new_dir, new_sp, new_shape = axial_grid_for_sheared(array.shape, origin, axes)
        array = resample_affine(array, origin, axes, new_origin, new_dir, new_sp, new_shape)
        origin, direction, spacing = new_origin, new_dir, new_sp
        steps.append(f"resampled from a {geo.tilt_deg:.2f} degree gantry tilt onto an axial grid")
    else:
        direction = np.stack([geo.row, geo.col, geo.normal], axis=1)
        spacing = (geo.pixel_spacing_xy[0], geo.pixel_spacing_xy[1], geo.z_spacing)
    model, version = geo.headers[0].synthetic_model or (None, None)
    prov = Provenance(source_files=tuple(str(h.path) for h in geo.headers), model=model,
                      model_version=version or None, steps=tuple(steps))
    return Volume(array, spacing=spacing, origin=tuple(origin), direction=direction,
                  metadata=_metadata(geo.headers[0]), provenance=prov)


def inspect_dicom(path, series_uid: str | None = None, workers: int | None = None,
                  **_ignored) -> tuple[dict[str, Any], Volume]:
    """Series found, the chosen one's geometry checks, and the volume (resampled where it had to be)."""
    path = Path(path)
    scan, headers = _select(path, series_uid, workers)
    report: dict[str, Any] = {}
    if scan is not None:
        report["series"] = [s.to_dict() for s in scan.series]
        report["ignored_files"] = [{"file": f, "reason": r} for f, r in scan.ignored[:20]]
        report["n_ignored_files"] = len(scan.ignored)
    else:
        h = headers[0]
        report["series"] = [SeriesInfo(h.series_uid, h.modality, h.description, [h]).to_dict()]
    report["chosen_series"] = headers[0].series_uid
    geo = analyse(headers, path)
    g = geo.report()
    report["geometry"] = g
    report["tilt"] = f"{g['tilt_deg']:.2f} degrees (gantry tilt)" if geo.tilted else "none"
    if geo.missing:
        report["spacing_uniformity"] = "missing slices: " + ", ".join(
            f"{m['n_missing']} after {m['after']}" for m in geo.missing)
    elif geo.nonuniform:
        report["spacing_uniformity"] = f"non-uniform ({g['step_min_mm']} to {g['step_max_mm']} mm)"
    elif len(headers) == 1:
        report["spacing_uniformity"] = "single slice"
    else:
        report["spacing_uniformity"] = f"uniform ({geo.z_spacing:.4g} mm)"
    vol = _build(geo, path, "resample", "resample", workers)  # duplicates still raise: no honest volume
    return report, vol


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def _patient_from(copy_patient) -> dict[str, Any]:
    keys = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge")
    if copy_patient is None:
        return {}
    if isinstance(copy_patient, (str, os.PathLike)):
        import pydicom

        ds = pydicom.dcmread(copy_patient, stop_before_pixels=True, force=True)
        return {k: ds.get(k) for k in keys if ds.get(k) not in (None, "")}
    if isinstance(copy_patient, dict):
        bad = set(copy_patient) - set(keys)
        if bad:
            raise InputError(f"copy_patient= accepts only {keys}, got {sorted(bad)}")
        return dict(copy_patient)
    return {k: copy_patient.get(k) for k in keys if copy_patient.get(k) not in (None, "")}  # a Dataset


def _ds(value: float) -> str:
    from pydicom.valuerep import format_number_as_ds

    v = float(value)
    if abs(v) < 1e-12:
        v = 0.0
    return format_number_as_ds(v)


def write_dicom_series(volume: Volume, folder, synthetic: bool | None = None, copy_patient=None,
                       series_description: str | None = None, overwrite: bool = False,
                       workers: int | None = None, **_ignored) -> Path:
    """Write ``volume`` as a CT Image Storage series, one file per slice, atomically into ``folder``.

    Voxels are stored as signed 16-bit HU (slope 1, intercept 0), so a re-import is exact; geometry
    (ImagePositionPatient, ImageOrientationPatient, PixelSpacing) is written to 14+ significant digits.
    Synthetic volumes (``volume.provenance.synthetic`` or ``synthetic=True``) are marked DERIVED\\SECONDARY,
    Synthetic Data = YES, with a synthetic Series Description and the model in Contributing Equipment.
    Patient identifiers are written only when ``copy_patient`` (a DICOM path, Dataset or dict) is given.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

    from ctstudio import __version__
    from ctstudio.io.atomic import atomic_dir

    folder = Path(folder)
    prov = volume.provenance
    synthetic = prov.synthetic if synthetic is None else bool(synthetic)
    md = volume.metadata
    patient = _patient_from(copy_patient)
    now = _dt.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    direction = volume.direction
    row, col, zdir = direction[:, 0], direction[:, 1], direction[:, 2]
    arr = volume.array
    origin = np.asarray(volume.origin, dtype=float)
    sx, sy, sz = volume.spacing
    if np.allclose(np.cross(row, col), -zdir, atol=1e-4):
        # left-handed (common in NIfTI): DICOM stacks slices along row x column, so write the
        # slices in reverse order from the far end; the same voxels land in the same LPS places.
        arr = arr[::-1]
        origin = origin + zdir * sz * (volume.shape[0] - 1)
        zdir = -zdir
    if not np.allclose(np.cross(row, col), zdir, atol=1e-4):
        raise VolumeWriteError("the volume's z axis is not row x column (a left-handed or sheared direction); "
                               "DICOM slices are ordered along row x column", path=folder,
                               hint="the direction matrix is not a rotation; fix the volume's geometry")
    model = prov.model or "unknown model"
    version = prov.model_version or ""
    desc = series_description or md.series_description or ("ctstudio volume" if not synthetic else "")
    if synthetic:
        desc = f"SYNTHETIC ({model}{' ' + version if version else ''})" + (f" {desc}" if desc else "")
    desc = desc[:64]

    base = Dataset()
    base.SpecificCharacterSet = "ISO_IR 192"
    if synthetic:
        base.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    elif prov.steps and any(not st.startswith("procedural") for st in prov.steps):
        base.ImageType = ["DERIVED", "PRIMARY", "AXIAL"]  # resampled or clipped since acquisition
    else:
        base.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    base.SOPClassUID = CT_IMAGE_STORAGE
    base.StudyDate = base.SeriesDate = base.ContentDate = date
    base.StudyTime = base.SeriesTime = base.ContentTime = time
    base.AccessionNumber = ""
    base.Modality = "CT"
    base.Manufacturer = "ctstudio" if synthetic else (md.manufacturer or "")[:64]
    base.ReferringPhysicianName = ""
    base.SeriesDescription = desc
    if not synthetic and md.manufacturer_model:
        base.ManufacturerModelName = md.manufacturer_model[:64]
    base.PatientName = patient.get("PatientName", "")
    base.PatientID = patient.get("PatientID", "")
    base.PatientBirthDate = patient.get("PatientBirthDate", "")
    base.PatientSex = patient.get("PatientSex", "")
    if patient.get("PatientAge"):
        base.PatientAge = patient["PatientAge"]
    if md.body_part:
        base.BodyPartExamined = md.body_part[:16]
    base.SliceThickness = _ds(md.slice_thickness if md.slice_thickness else sz)
    base.KVP = _ds(md.kvp) if md.kvp else ""
    base.SpacingBetweenSlices = _ds(sz)
    if md.kernel:
        base.ConvolutionKernel = md.kernel[:16]
    base.SoftwareVersions = f"ctstudio {__version__}"
    base.StudyInstanceUID = study_uid
    base.SeriesInstanceUID = series_uid
    base.StudyID = ""
    base.SeriesNumber = 1
    base.AcquisitionNumber = 1
    base.FrameOfReferenceUID = frame_uid
    base.PositionReferenceIndicator = ""
    base.ImageOrientationPatient = [_ds(v) for v in (*row, *col)]
    base.PixelSpacing = [_ds(sy), _ds(sx)]
    base.SamplesPerPixel = 1
    base.PhotometricInterpretation = "MONOCHROME2"
    base.Rows, base.Columns = volume.shape[1], volume.shape[2]
    base.BitsAllocated = 16
    base.BitsStored = 16
    base.HighBit = 15
    base.PixelRepresentation = 1
    base.RescaleIntercept = "0"
    base.RescaleSlope = "1"
    base.RescaleType = "HU"
    base.WindowCenter = "40"
    base.WindowWidth = "400"
    if synthetic:
        base.SyntheticData = "YES"
        base.DerivationDescription = f"Synthetic CT produced by {model} {version}".strip()[:1024]
        item = Dataset()
        item.Manufacturer = "ctstudio"
        item.ManufacturerModelName = model[:64]
        item.SoftwareVersions = (version or __version__)[:64]
        item.ContributionDescription = f"pixel data generated by {model} {version}".strip()[:1024]
        code = Dataset()
        code.CodeValue = "109103"
        code.CodingSchemeDesignator = "DCM"
        code.CodeMeaning = "Modifying Equipment"
        item.PurposeOfReferenceCodeSequence = Sequence([code])
        item.ContributionDateTime = now.strftime("%Y%m%d%H%M%S")
        base.ContributingEquipmentSequence = Sequence([item])
    if prov.steps:
        base.ImageComments = "; ".join(prov.steps)[:10240]

    z_step = zdir * sz

    def write_slice(args):
        k, tmp = args
        ds = Dataset()
        ds.update(base)
        sop_uid = generate_uid()
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = k + 1
        pos = origin + z_step * k
        ds.ImagePositionPatient = [_ds(v) for v in pos]
        ds.SliceLocation = _ds(pos @ zdir)
        ds.PixelData = np.ascontiguousarray(arr[k], dtype="<i2").tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        ds["PixelData"].VR = "OW"
        ds.save_as(tmp / f"CT{k + 1:05d}.dcm", enforce_file_format=True)

    try:
        with atomic_dir(folder, overwrite=overwrite) as tmp:
            _parallel(write_slice, [(k, tmp) for k in range(volume.shape[0])], workers)
    except FileExistsError:
        raise VolumeWriteError("the output folder exists and is not empty", path=folder,
                               hint="choose a new folder or pass overwrite=True (CLI: --overwrite)") from None
    except OSError as exc:
        raise VolumeWriteError(f"could not write the series ({exc.strerror or exc})", path=folder) from None
    except Exception as exc:
        if isinstance(exc, (VolumeWriteError, InputError)):
            raise
        raise VolumeWriteError(f"could not write the series ({type(exc).__name__}: {exc})", path=folder) from None
    return folder
