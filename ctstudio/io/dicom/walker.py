"""A minimal, fast DICOM header walker for the common case (Part 10 file, little-endian dataset).

pydicom parses and converts every element in Python, which dominates the load time of a
several-hundred-slice series (GIL-bound, so threads do not help). This walker only steps over
elements, keeps the raw bytes of the few top-level tags the series reader needs, and finds where
Pixel Data starts. Anything unusual (no preamble, big-endian or deflated transfer syntax, a
malformed element) returns ``None`` and the caller falls back to pydicom, which then also
produces the proper error message. Sequences are skipped, including undefined-length ones.
"""

from __future__ import annotations

_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UR", b"UT", b"UN", b"SV", b"UV"}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
_UNSUPPORTED = {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}  # big endian, deflated


class _Bail(Exception):
    pass


class Truncated(Exception):
    """An element runs past the end of the file: the file was cut short."""

    def __init__(self, offset: int, size: int):
        super().__init__(f"an element at byte {offset} runs past the end of the file ({size} bytes)")
        self.offset, self.size = offset, size


class _Buf:
    def __init__(self, fh, size: int):
        self.fh = fh
        self.size = size
        self.data = fh.read(min(size, 16384))

    def need(self, end: int) -> None:
        if end > len(self.data):
            if end > self.size:
                raise Truncated(len(self.data), self.size)
            more = max(end - len(self.data), len(self.data))
            self.data += self.fh.read(more)
            if end > len(self.data):
                raise _Bail("short read")

    def u16(self, pos: int) -> int:
        self.need(pos + 2)
        return int.from_bytes(self.data[pos:pos + 2], "little")

    def u32(self, pos: int) -> int:
        self.need(pos + 4)
        return int.from_bytes(self.data[pos:pos + 4], "little")

    def tag(self, pos: int) -> int:
        self.need(pos + 4)
        d = self.data
        return (d[pos] | d[pos + 1] << 8) << 16 | (d[pos + 2] | d[pos + 3] << 8)


def _element(buf: _Buf, pos: int, implicit: bool):
    """(tag, vr, value_pos, length) of the element at pos."""
    tag = buf.tag(pos)
    if implicit or (tag >> 16) == 0xFFFE:
        return tag, None, pos + 8, buf.u32(pos + 4)
    buf.need(pos + 8)
    vr = bytes(buf.data[pos + 4:pos + 6])
    if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
        raise _Bail("bad VR")
    if vr in _LONG_VRS:
        return tag, vr, pos + 12, buf.u32(pos + 8)
    return tag, vr, pos + 8, buf.u16(pos + 6)


def _skip_undefined(buf: _Buf, pos: int, implicit: bool, depth: int = 0) -> int:
    """Skip the items of an undefined-length sequence starting at pos; return the position after it."""
    if depth > 16:
        raise _Bail("sequence nesting too deep")
    while True:
        tag = buf.tag(pos)
        length = buf.u32(pos + 4)
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise _Bail("expected an item")
        if length != 0xFFFFFFFF:
            pos += length
            continue
        while True:  # undefined-length item: elements until the item delimiter
            tag, vr, vpos, vlen = _element(buf, pos, implicit)
            if tag == _ITEM_END:
                pos = vpos
                break
            if vlen == 0xFFFFFFFF:
                pos = _skip_undefined(buf, vpos, implicit or vr == b"UN", depth + 1)
            else:
                pos = vpos + vlen


def walk(fh, size: int, wanted: frozenset[int]):
    """Return ``(transfer_syntax, values, pixel_info)`` or ``None`` when pydicom should take over.

    ``values`` maps wanted top-level tags to their raw value bytes; ``pixel_info`` is ``None``
    (no Pixel Data) or ``(element_offset, value_offset, length)`` with length 0xFFFFFFFF for
    encapsulated (compressed) pixels.
    """
    try:
        buf = _Buf(fh, size)
        if len(buf.data) < 132 or buf.data[128:132] != b"DICM":
            return None
        pos, ts = 132, ""
        while pos + 8 <= size and (buf.tag(pos) >> 16) == 0x0002:
            tag, vr, vpos, vlen = _element(buf, pos, False)
            if vlen == 0xFFFFFFFF:
                return None
            if tag == 0x00020010:
                buf.need(vpos + vlen)
                ts = buf.data[vpos:vpos + vlen].decode("ascii", "replace").strip("\x00 ")
            pos = vpos + vlen
        if not ts or ts in _UNSUPPORTED:
            return None
        implicit = ts == IMPLICIT_VR_LITTLE_ENDIAN
        values: dict[int, bytes] = {}
        pixel = None
        while pos + 8 <= size:
            tag, vr, vpos, vlen = _element(buf, pos, implicit)
            if tag in _PIXEL_TAGS:
                pixel = (pos, vpos, vlen)
                break
            if tag > 0x7FE00010:
                break
            if vlen == 0xFFFFFFFF:
                pos = _skip_undefined(buf, vpos, implicit or vr == b"UN")
                continue
            if tag in wanted:
                buf.need(vpos + vlen)
                values[tag] = bytes(buf.data[vpos:vpos + vlen])
            pos = vpos + vlen
        if pixel is None and pos != size:
            raise Truncated(pos, size)  # the last element is cut short (or runs past the end)
        return ts, values, pixel
    except (_Bail, IndexError, ValueError):
        return None
