"""Pass 1 of reading DICOM: the header of one file, as a :class:`SliceHeader`.

Two parsers fill it through the one field map of :mod:`ctstudio.io.dicom.fields`: the fast walker
(:mod:`ctstudio.io.dicom.walker`) for ordinary little-endian Part 10 files, and pydicom for anything
else (no preamble, big endian, deflated, a synthetic series whose provenance sits in a sequence, and
every damaged file, so that the error message is pydicom's precise one). Both also find where the
Pixel Data element starts, so pass 2 can read uncompressed pixels straight from the file.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctstudio.errors import NotAnImageError, ValueRangeError, VolumeReadError
from ctstudio.io.dicom import walker
from ctstudio.io.dicom.fields import HEADER_FIELDS, HEADER_TAGS, values_from_bytes, values_from_dataset

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
#: transfer syntaxes whose pixels are stored uncompressed, little endian (read with numpy.fromfile)
UNCOMPRESSED_SYNTAXES = (IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN)
PIXEL_DATA_TAG = 0x7FE00010
UNDEFINED_LENGTH = 0xFFFFFFFF
_EXPLICIT_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UR", b"UT", b"UN"}


@dataclass
class SliceHeader:
    """What the series reader knows about one DICOM file after reading its header."""

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
    raw_value_offset: int = -1  # where uncompressed little-endian pixels start, -1 otherwise
    raw_length: int = -1  # their declared length in bytes, -1 otherwise
    instance: int | None = None
    gantry_tilt: float | None = None
    spacing_between: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    available: int = -1  # bytes in the file after the start of uncompressed pixels (-1: not known)
    synthetic_model: tuple[str, str] | None = None  # (model, version) of a series marked Synthetic Data = YES

    @property
    def image_bytes(self) -> int:
        """The bytes one uncompressed frame of Rows x Columns at BitsAllocated needs."""
        return self.rows * self.columns * self.bits_allocated // 8


def slice_header_from_values(path: Path, values: dict[str, Any], transfer_syntax: str) -> SliceHeader:
    """Build a :class:`SliceHeader` from the ``{keyword: value}`` dict of :mod:`~ctstudio.io.dicom.fields`."""
    h = SliceHeader(path=path, transfer_syntax=transfer_syntax)
    h.implicit = transfer_syntax == IMPLICIT_VR_LITTLE_ENDIAN
    h.big_endian = transfer_syntax == EXPLICIT_VR_BIG_ENDIAN
    h.series_uid = values["SeriesInstanceUID"]
    h.modality = values["Modality"]
    h.description = values["SeriesDescription"]
    h.rows = values["Rows"] or 0
    h.columns = values["Columns"] or 0
    h.frames = int(values["NumberOfFrames"] or 1)
    h.samples = values["SamplesPerPixel"] or 1
    h.bits_allocated = values["BitsAllocated"] or 16
    h.bits_stored = values["BitsStored"] or h.bits_allocated
    h.signed = values["PixelRepresentation"] == 1
    h.slope = 1.0 if values["RescaleSlope"] is None else values["RescaleSlope"]
    h.intercept = values["RescaleIntercept"] or 0.0
    if values["ImagePositionPatient"] is not None:
        h.position = np.array(values["ImagePositionPatient"])
    if values["ImageOrientationPatient"] is not None:
        h.orientation = np.array(values["ImageOrientationPatient"])
    if values["PixelSpacing"] is not None:
        h.pixel_spacing = values["PixelSpacing"]
    h.instance = None if values["InstanceNumber"] is None else int(values["InstanceNumber"])
    h.gantry_tilt = values["GantryDetectorTilt"]
    h.spacing_between = values["SpacingBetweenSlices"]
    h.metadata = {f.metadata_key: values[f.keyword] for f in HEADER_FIELDS if f.metadata_key}
    h.metadata["modality"] = h.modality
    return h


def looks_like_dicom(path: Path) -> bool:
    """The 'DICM' magic at byte 128 (files without a preamble are tried by force elsewhere)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def looks_like_raw_dataset(path: Path) -> bool:
    """A DICOM dataset without the 128-byte preamble starts with a group 0002 or 0008 tag."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return True  # let the header reader raise the proper error
    return len(head) == 4 and head[:2] in (b"\x02\x00", b"\x08\x00")


def read_slice_header(path: Path, force: bool = False) -> SliceHeader:
    """Header of one file: the fast walker for ordinary files, pydicom for anything else.

    ``force``: the file has no 'DICM' preamble; parse it as a bare dataset (pydicom only).
    """
    path = Path(path)
    if not force:
        h = read_header_fast(path)
        if h is not None:
            return h
    return read_header_pydicom(path, force=force)


def read_header_fast(path: Path) -> SliceHeader | None:
    """The header through the byte walker, or ``None`` where pydicom must read it."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            walked = walker.walk(fh, size, HEADER_TAGS)
    except walker.Truncated as exc:
        raise NotAnImageError(f"the DICOM file is truncated: {exc}", path=path,
                              hint="the copy was cut short; copy or export the file again") from None
    except OSError:
        return None
    if walked is None:
        return None
    transfer_syntax, raw, pixel = walked
    try:
        values = values_from_bytes(raw)
    except (ValueError, TypeError, OverflowError):
        return None
    if values["SyntheticData"].upper() == "YES":
        return None  # pydicom reads the Contributing Equipment Sequence for the provenance
    try:
        h = slice_header_from_values(path, values, transfer_syntax)
    except (ValueError, TypeError, OverflowError):
        return None
    if pixel is not None:
        element_offset, value_offset, length = pixel
        h.pixel_offset = element_offset
        if transfer_syntax in UNCOMPRESSED_SYNTAXES and length != UNDEFINED_LENGTH:
            h.raw_value_offset, h.raw_length = value_offset, length
            h.available = size - value_offset
    return h


def read_header_pydicom(path: Path, force: bool = False) -> SliceHeader:
    """The header through pydicom (every transfer syntax; the precise error for a damaged file)."""
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
            dataset = pydicom.dcmread(fh, stop_before_pixels=True, force=force)
            pixel_offset = fh.tell()
            after_header = fh.read(12)
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
    meta = getattr(dataset, "file_meta", None)
    transfer_syntax = str(getattr(meta, "TransferSyntaxUID", "") or "") if meta is not None else ""
    try:
        h = slice_header_from_values(path, values_from_dataset(dataset),
                                     transfer_syntax or IMPLICIT_VR_LITTLE_ENDIAN)
        if str(dataset.get("SyntheticData", "") or "").strip().upper() == "YES":
            model, version = "unknown model", ""
            for item in dataset.get("ContributingEquipmentSequence", []) or []:
                if item.get("ManufacturerModelName"):
                    model = str(item.ManufacturerModelName).strip()
                    version = str(item.get("SoftwareVersions", "") or "").strip()
            h.synthetic_model = (model, version)
    except Exception as exc:
        raise NotAnImageError(f"a DICOM header value cannot be read ({type(exc).__name__}: {exc})",
                              path=path, hint="the file is damaged; re-export it") from None
    _locate_pixels_after_header(h, pixel_offset, after_header, size)
    return h


def _locate_pixels_after_header(h: SliceHeader, offset: int, head: bytes, size: int) -> None:
    """Fill the Pixel Data position from the bytes that follow the header pydicom stopped before."""
    if len(head) < 8:
        return
    tag = int.from_bytes(head[0:2], "little") << 16 | int.from_bytes(head[2:4], "little")
    if tag != PIXEL_DATA_TAG:
        return
    h.pixel_offset = offset
    if h.transfer_syntax not in UNCOMPRESSED_SYNTAXES:
        return
    if h.implicit:
        length, start = int.from_bytes(head[4:8], "little"), offset + 8
    elif head[4:6] in _EXPLICIT_LONG_VRS and len(head) == 12:
        length, start = int.from_bytes(head[8:12], "little"), offset + 12
    else:
        length, start = int.from_bytes(head[6:8], "little"), offset + 8
    if length != UNDEFINED_LENGTH:
        h.raw_length, h.raw_value_offset, h.available = length, start, size - start


def check_image_header(h: SliceHeader) -> None:
    """Refuse, with a specific message, a file whose header cannot describe a CT image, or whose
    uncompressed pixel data is shorter than the header declares (naming both sizes)."""
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
    if 0 <= h.raw_length < h.image_bytes:
        raise NotAnImageError(
            f"Pixel Data holds {h.raw_length} bytes but Rows x Columns = {h.rows} x {h.columns} "
            f"at {h.bits_allocated} bits needs {h.image_bytes}", path=h.path,
            hint="the header declares a bigger image than the file holds; the file is damaged")
    if not (h.slope and math.isfinite(h.slope) and math.isfinite(h.intercept)):
        raise ValueRangeError(f"invalid rescale slope/intercept ({h.slope}, {h.intercept})", path=h.path)
