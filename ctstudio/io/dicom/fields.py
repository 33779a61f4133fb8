"""The one map of the DICOM header fields the series reader uses, and how each is turned into a value.

Both header parsers, the fast byte walker (:mod:`ctstudio.io.dicom.walker`) and pydicom, produce a
``{keyword: value}`` dict through this map, and :func:`ctstudio.io.dicom.header.slice_header_from_values`
turns that dict into a :class:`~ctstudio.io.dicom.header.SliceHeader`. A field is added here once.

Value kinds (what the reader wants, whatever the element's VR):

- ``"text"``: the first value of a string element, stripped (``""`` when absent);
- ``"number"``: the first value of a DS / IS element as a float (``None`` when absent or not a number);
- ``"count"``: an unsigned short (US) as an int (``None`` when absent);
- ``"vector"``: all ``length`` values of a DS element as a tuple of floats (``None`` unless exactly ``length``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HeaderField:
    """One top-level DICOM element the reader needs."""

    keyword: str  #: the DICOM keyword (pydicom's attribute name)
    tag: int  #: (group << 16) | element
    kind: str  #: "text" | "number" | "count" | "vector"
    length: int = 1  #: number of values of a "vector"
    metadata_key: str | None = None  #: the Volume metadata field it fills, if any


HEADER_FIELDS: tuple[HeaderField, ...] = (
    HeaderField("SpecificCharacterSet", 0x00080005, "text"),
    HeaderField("SyntheticData", 0x0008001C, "text"),
    HeaderField("Modality", 0x00080060, "text"),
    HeaderField("Manufacturer", 0x00080070, "text", metadata_key="manufacturer"),
    HeaderField("SeriesDescription", 0x0008103E, "text", metadata_key="series_description"),
    HeaderField("ManufacturerModelName", 0x00081090, "text", metadata_key="manufacturer_model"),
    HeaderField("BodyPartExamined", 0x00180015, "text", metadata_key="body_part"),
    HeaderField("SliceThickness", 0x00180050, "number", metadata_key="slice_thickness"),
    HeaderField("KVP", 0x00180060, "number", metadata_key="kvp"),
    HeaderField("SpacingBetweenSlices", 0x00180088, "number"),
    HeaderField("GantryDetectorTilt", 0x00181120, "number"),
    HeaderField("ConvolutionKernel", 0x00181210, "text", metadata_key="kernel"),
    HeaderField("SeriesInstanceUID", 0x0020000E, "text"),
    HeaderField("InstanceNumber", 0x00200013, "number"),
    HeaderField("ImagePositionPatient", 0x00200032, "vector", length=3),
    HeaderField("ImageOrientationPatient", 0x00200037, "vector", length=6),
    HeaderField("SamplesPerPixel", 0x00280002, "count"),
    HeaderField("NumberOfFrames", 0x00280008, "number"),
    HeaderField("Rows", 0x00280010, "count"),
    HeaderField("Columns", 0x00280011, "count"),
    HeaderField("PixelSpacing", 0x00280030, "vector", length=2),
    HeaderField("BitsAllocated", 0x00280100, "count"),
    HeaderField("BitsStored", 0x00280101, "count"),
    HeaderField("PixelRepresentation", 0x00280103, "count"),
    HeaderField("RescaleIntercept", 0x00281052, "number"),
    HeaderField("RescaleSlope", 0x00281053, "number"),
)

#: the tags the fast walker keeps the bytes of
HEADER_TAGS = frozenset(f.tag for f in HEADER_FIELDS)


def to_float(value: Any) -> float | None:
    """``value`` as a float, or ``None`` when it is absent or not a number."""
    try:
        if value is None or value == "":
            return None
        return float(value)
    except (TypeError, ValueError):
        return None


def _first(value: Any) -> Any:
    """The first value of a multi-valued element (pydicom's MultiValue or a list), else the value."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return value[0] if len(value) else None
    return value


def _vector(parts, length: int) -> tuple[float, ...] | None:
    if parts is None or len(parts) != length:
        return None
    try:
        return tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        return None


def values_from_bytes(raw: dict[int, bytes]) -> dict[str, Any]:
    """The header values from the raw little-endian element bytes the fast walker kept (``{tag: bytes}``)."""
    charset = raw.get(0x00080005, b"")
    encoding = "utf-8" if b"192" in charset else "latin-1"  # ISO_IR 192 is UTF-8; the rest read as Latin-1
    out: dict[str, Any] = {}
    for f in HEADER_FIELDS:
        data = raw.get(f.tag)
        if f.kind == "count":
            out[f.keyword] = int.from_bytes(data[:2], "little") if data is not None and len(data) >= 2 else None
            continue
        parts = None if data is None else [p.strip(" \x00") for p in data.decode(encoding, "replace").split("\\")]
        if f.kind == "text":
            out[f.keyword] = parts[0] if parts else ""
        elif f.kind == "number":
            out[f.keyword] = to_float(parts[0]) if parts else None
        else:
            out[f.keyword] = _vector(parts, f.length)
    return out


def values_from_dataset(ds) -> dict[str, Any]:
    """The header values from a pydicom Dataset (read with ``stop_before_pixels``)."""
    out: dict[str, Any] = {}
    for f in HEADER_FIELDS:
        value = ds.get(f.keyword)
        if f.kind == "text":
            first = _first(value)
            out[f.keyword] = "" if first is None else str(first).strip()
        elif f.kind == "number":
            out[f.keyword] = to_float(_first(value))
        elif f.kind == "count":
            out[f.keyword] = None if value in (None, "") else int(_first(value))
        else:
            out[f.keyword] = None if value is None else _vector(list(value) if not isinstance(value, (str, bytes))
                                                                else None, f.length)
    return out
