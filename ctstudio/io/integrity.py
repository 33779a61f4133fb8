"""Checks that a NIfTI / MHA / NRRD file holds all the voxel data its header declares, before SimpleITK
reads it (SimpleITK fills a short or truncated data block with zeros without a word).

For each format the header is parsed here (only the fields that give the data size and where the data
is), then:

1. the declared volume must fit in memory (:func:`ctstudio.io.limits.check_allocation`), and a compressed
   block cannot declare more data than deflate can expand its bytes to, both refused before any allocation;
2. raw data: the bytes present after the header must be at least the declared size;
3. compressed data (gzip NIfTI, zlib MHA, gzip / bzip2 NRRD): the stream is decompressed (counting, not
   keeping, the bytes): it must reach its end-of-stream marker, pass its CRC, and hold the declared size.

A header this module cannot parse is left to SimpleITK, whose failure is reported as "could not read".
Errors are :class:`~ctstudio.errors.NotAnImageError` naming the file and both sizes (declared vs present).
"""

from __future__ import annotations

import bz2
import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctstudio.errors import NotAnImageError
from ctstudio.io.limits import check_allocation

#: deflate cannot expand its input more than about 1032 times; a little slack for headers
MAX_DEFLATE_RATIO = 1040
CHUNK = 1 << 22


@dataclass
class DataBlock:
    """Where a file's voxel data is and how big its header says it is."""

    shape: tuple[int, ...]
    item_bytes: int  # bytes per voxel (all components); 0 when the type is unknown (no size check)
    data_file: Path  # the file holding the data (the header file itself when attached)
    offset: int  # where the data starts in data_file (-1: the last `declared` bytes of the file)
    compression: str  # "raw" | "gzip" | "zlib" | "bzip2" | "text" (not checked)
    float_dtype: str | None = None  # numpy dtype of float NIfTI data (to count NaN/Inf), else None

    @property
    def declared(self) -> int:
        n = 1
        for s in self.shape:
            n *= int(s)
        return n * self.item_bytes


def check_volume_file(path: Path, copy_to=None) -> int:
    """Check ``path``'s voxel data against its header (see the module doc); return the number of NaN /
    infinite voxels found in float NIfTI data (ITK's NIfTI reader silently turns them into 0).

    ``copy_to`` (an open binary file): a gzip NIfTI's decompressed bytes, header included, are written there as
    the check decompresses them, so the reader can read that uncompressed copy instead of decompressing the
    file a second time. Other files write nothing to it."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        block = _nifti_block(path)
    elif name.endswith((".mha", ".mhd")):
        block = _metaimage_block(path)
    elif name.endswith((".nrrd", ".nhdr")):
        block = _nrrd_block(path)
    else:
        return 0
    if block is None:
        return 0
    check_allocation(block.shape, 4, path)  # the int16 volume plus a read buffer at least as wide
    if block.item_bytes <= 0 or block.compression == "text":
        return 0
    try:
        file_size = block.data_file.stat().st_size
    except (OSError, ValueError):  # ValueError: a NUL byte in the name (found by bench/fuzz.py)
        raise NotAnImageError(f"the data file {block.data_file.name} named in the header is missing or unreadable",
                              path=path, hint="keep the header and its data file together") from None
    if block.compression == "raw":
        present = file_size if block.offset < 0 else file_size - block.offset
        if present < block.declared:
            raise _short(path, block, max(present, 0))
        if block.float_dtype and block.offset >= 0:
            return _count_nonfinite_raw(block)
        return 0
    compressed = file_size - max(block.offset, 0)
    if block.compression != "bzip2" and block.declared > MAX_DEFLATE_RATIO * max(compressed, 1) + (1 << 16):
        raise NotAnImageError(
            f"the header declares {block.declared} bytes of voxel data ({'x'.join(map(str, block.shape))}) "
            f"but the file holds only {compressed} compressed bytes, which cannot expand to that much",
            path=path, hint="the file is truncated or its header is damaged; copy or export it again")
    return _check_stream(path, block, copy_to)


def _short(path: Path, block: DataBlock, present: int) -> NotAnImageError:
    return NotAnImageError(
        f"the file is truncated: the header declares {block.declared} bytes of voxel data "
        f"({'x'.join(map(str, block.shape))}) but only {present} bytes are present",
        path=path, hint="the copy was cut short; copy or export the file again (ctstudio will not fill the "
                        "missing part with zeros)")


class _Counter:
    """Counts decompressed bytes (after skipping ``skip`` header bytes) and the NaN / Inf among them."""

    def __init__(self, skip: int, float_dtype: str | None, sink=None):
        self.skip, self.count, self.nonfinite = skip, 0, 0
        self.sink = sink  # receives every decompressed byte, the skipped header included
        self.dtype = np.dtype(float_dtype) if float_dtype else None
        self._carry = b""

    def feed(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink.write(data)
        if self.skip:
            cut = min(self.skip, len(data))
            data, self.skip = data[cut:], self.skip - cut
        self.count += len(data)
        if self.dtype is not None and data:
            data = self._carry + data
            usable = len(data) - len(data) % self.dtype.itemsize
            values = np.frombuffer(data[:usable], self.dtype)
            self.nonfinite += int(values.size - np.count_nonzero(np.isfinite(values)))
            self._carry = data[usable:]


def _check_stream(path: Path, block: DataBlock, copy_to=None) -> int:
    """Decompress the data block to its end, checking end of stream, CRC and size."""
    nifti_gzip = block.compression == "gzip" and _is_nifti(path)  # the whole file is one gzip stream
    counter = _Counter(block.offset if nifti_gzip else 0, block.float_dtype, copy_to if nifti_gzip else None)
    try:
        with open(block.data_file, "rb") as fh:
            if not nifti_gzip:
                fh.seek(block.offset)
            if block.compression == "bzip2":
                complete = _drain(fh, bz2.BZ2Decompressor, counter, members=True)
            elif block.compression == "gzip":  # every member's CRC-32 and length are checked by zlib
                complete = _drain(fh, lambda: zlib.decompressobj(zlib.MAX_WBITS | 16), counter, members=True)
            else:  # zlib (MetaImage)
                complete = _drain(fh, lambda: zlib.decompressobj(zlib.MAX_WBITS | 32), counter)
    except EOFError:
        complete = False
    except (zlib.error, OSError, ValueError) as exc:
        why = f"{exc} (a CRC or length check failed)" if "check" in str(exc) else str(exc)
        raise NotAnImageError(f"the compressed voxel data is damaged ({why}; {counter.count} of "
                              f"{block.declared} declared bytes decompressed before the damage)", path=path,
                              hint="the file is corrupt; copy or export it again") from None
    if not complete:
        raise NotAnImageError(
            f"the file is truncated: the compressed stream ends before its end-of-stream marker; the header "
            f"declares {block.declared} bytes of voxel data ({'x'.join(map(str, block.shape))}) but only "
            f"{counter.count} bytes are present", path=path,
            hint="the copy was cut short; copy or export the file again (ctstudio will not fill the missing "
                 "part with zeros)")
    if counter.count < block.declared:
        raise _short(path, block, counter.count)
    return counter.nonfinite


def _drain(fh, new_decompressor, counter: _Counter, members: bool = False) -> bool:
    """Feed ``fh`` through zlib / bz2 decompressors, at most :data:`CHUNK` bytes out at a time (a small
    file that expands hugely never sits in memory). ``members``: the stream may be several members one
    after the other (gzip, bzip2; trailing zero padding is allowed). True when the last stream ended."""
    dec = new_decompressor()
    is_zlib = hasattr(dec, "unconsumed_tail")
    pending = b""
    while True:
        chunk = pending or fh.read(1 << 16)
        pending = b""
        if not chunk:
            return dec.eof
        if dec.eof:  # a further member, or padding
            if not members or not chunk.strip(b"\0"):
                continue
            dec = new_decompressor()
        counter.feed(dec.decompress(chunk, CHUNK))
        if is_zlib:
            while dec.unconsumed_tail and not dec.eof:
                counter.feed(dec.decompress(dec.unconsumed_tail, CHUNK))
        else:
            while not dec.needs_input and not dec.eof:
                counter.feed(dec.decompress(b"", CHUNK))
        if dec.eof:
            pending = dec.unused_data


def _count_nonfinite_raw(block: DataBlock) -> int:
    dtype = np.dtype(block.float_dtype)
    n = block.declared // dtype.itemsize
    values = np.memmap(block.data_file, dtype=dtype, mode="r", offset=block.offset, shape=(n,))
    return int(n - np.count_nonzero(np.isfinite(values)))


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


# --- NIfTI ----------------------------------------------------------------------------------------
def _read_head(path: Path, n: int) -> bytes:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read(n)
        with open(path, "rb") as fh:
            return fh.read(n)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise NotAnImageError(f"could not read the file: its gzip stream is damaged ({exc})", path=path,
                              hint="is it a complete NIfTI file?") from None


def _nifti_block(path: Path) -> DataBlock | None:
    head = _read_head(path, 540)
    if len(head) < 348:
        return None
    for endian in ("<", ">"):
        size = int(np.frombuffer(head[0:4], endian + "i4")[0])
        if size in (348, 540):
            break
    else:
        return None
    if size == 348:
        dims = np.frombuffer(head[40:56], endian + "i2").astype(np.int64)
        datatype = int(np.frombuffer(head[70:72], endian + "i2")[0])
        bitpix = int(np.frombuffer(head[72:74], endian + "i2")[0])
        vox_offset = float(np.frombuffer(head[108:112], endian + "f4")[0])
    else:
        if len(head) < 540:
            return None
        datatype = int(np.frombuffer(head[12:14], endian + "i2")[0])
        bitpix = int(np.frombuffer(head[14:16], endian + "i2")[0])
        dims = np.frombuffer(head[16:80], endian + "i8")
        vox_offset = float(np.frombuffer(head[168:176], endian + "i8")[0])
    ndim = int(dims[0])
    if not 1 <= ndim <= 7 or np.any(dims[1:ndim + 1] < 1) or bitpix <= 0 or bitpix % 8:
        return None  # SimpleITK reports the damaged header
    shape = tuple(int(d) for d in dims[1:ndim + 1])[::-1]  # z, y, x
    offset = max(int(vox_offset), size + 4 if size == 348 else size)
    float_dtype = {16: endian + "f4", 64: endian + "f8"}.get(datatype)
    compression = "gzip" if path.name.lower().endswith(".gz") else "raw"
    return DataBlock(shape, bitpix // 8, path, offset, compression, float_dtype)


# --- text headers (MetaImage, NRRD) ---------------------------------------------------------------
#: the most dimensions a CT file may declare (ITK itself crashes on a MetaImage declaring thousands)
MAX_DIMENSIONS = 4


def _int_field(value: str) -> int | None:
    try:
        return int(value.strip())
    except ValueError:
        return None


def _check_dimension_count(path: Path, ndims: str | None, sizes: str | None, ndims_key: str,
                           sizes_key: str) -> None:
    """Refuse a text header whose dimension count is not a small integer or disagrees with its sizes
    (checked here because ITK's readers crash the process on such a header instead of failing)."""
    def bad(what: str) -> NotAnImageError:
        return NotAnImageError(f"the header is damaged: {what}", path=path,
                               hint="is it a complete MHA / NRRD file? copy or export it again")

    if ndims is not None:
        n = _int_field(ndims)
        if n is None or not 1 <= n <= MAX_DIMENSIONS:
            raise bad(f"{ndims_key} = {ndims[:40]!r}; a CT image has 1 to {MAX_DIMENSIONS} dimensions")
        if sizes is not None and len(sizes.split()) != n:
            raise bad(f"{ndims_key} = {n} but {sizes_key} lists {len(sizes.split())} sizes ({sizes[:60]!r})")
    elif sizes is not None and len(sizes.split()) > MAX_DIMENSIONS:
        raise bad(f"{sizes_key} lists {len(sizes.split())} sizes; a CT image has 1 to {MAX_DIMENSIONS}")


# --- MetaImage (.mha / .mhd) ----------------------------------------------------------------------
_MET_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
              "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}


def _text_header(path: Path, limit: int = 1 << 16) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(limit)


def _metaimage_block(path: Path) -> DataBlock | None:
    raw = _text_header(path)
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(raw):
        end = raw.find(b"\n", pos)
        if end < 0:
            return None
        line = raw[pos:end].decode("latin-1").strip()
        pos = end + 1
        if "=" not in line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        fields[key.lower()] = value
        if key.lower() == "elementdatafile":
            break
    else:
        return None
    _check_dimension_count(path, fields.get("ndims"), fields.get("dimsize"), "NDims", "DimSize")
    try:
        shape = tuple(int(v) for v in fields["dimsize"].split())
        channels = int(fields.get("elementnumberofchannels", "1"))
    except (KeyError, ValueError):
        return None
    if not shape or min(shape) < 1 or channels < 1:
        return None
    item = _MET_BYTES.get(fields.get("elementtype", "").upper(), 0) * channels
    target = fields["elementdatafile"]
    compressed = fields.get("compresseddata", "false").lower() == "true"
    if target.upper() == "LOCAL":
        data_file, offset = path, pos
    elif target.upper() == "LIST" or "%" in target or " " in target:
        return None  # one file per slice: left to SimpleITK
    else:
        data_file = path.parent / target
        header_size = _int_field(fields.get("headersize", "0") or "0")
        if header_size is None:
            return None
        offset = -1 if header_size < 0 else header_size
    return DataBlock(shape[::-1], item, data_file, offset if not compressed else max(offset, 0),
                     "zlib" if compressed else "raw")


# --- NRRD (.nrrd / .nhdr) -------------------------------------------------------------------------
_NRRD_BYTES = {}
for _names, _n in (
        (("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"), 1),
        (("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
          "unsigned short", "unsigned short int", "uint16", "uint16_t"), 2),
        (("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"), 4),
        (("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64",
          "int64_t", "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t",
          "double"), 8)):
    for _name in _names:
        _NRRD_BYTES[_name] = _n


def _nrrd_block(path: Path) -> DataBlock | None:
    raw = _text_header(path)
    if not raw.startswith(b"NRRD"):
        return None
    fields: dict[str, str] = {}
    pos = raw.find(b"\n") + 1
    while True:
        end = raw.find(b"\n", pos)
        if end < 0:
            if path.name.lower().endswith(".nhdr"):
                end = len(raw)
            else:
                return None
        line = raw[pos:end].decode("latin-1").rstrip("\r")
        pos = end + 1
        if not line.strip():
            break
        if line.startswith("#") or ":=" in line or ":" not in line:
            if pos >= len(raw):
                break
            continue
        key, value = line.split(":", 1)
        fields[key.strip().lower()] = value.strip()
        if pos >= len(raw):
            break
    _check_dimension_count(path, fields.get("dimension"), fields.get("sizes"), "dimension", "sizes")
    try:
        shape = tuple(int(v) for v in fields["sizes"].split())
    except (KeyError, ValueError):
        return None
    if not shape or min(shape) < 1:
        return None
    encoding = fields.get("encoding", "raw").lower()
    compression = {"raw": "raw", "gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2"}.get(encoding, "text")
    type_name = " ".join(fields.get("type", "").lower().split())
    item = _NRRD_BYTES.get(type_name, 0)
    line_skip = _int_field(fields.get("line skip", fields.get("lineskip", "0")) or "0")
    byte_skip = _int_field(fields.get("byte skip", fields.get("byteskip", "0")) or "0")
    if line_skip != 0 or byte_skip is None:
        return None  # skipped lines, or a field this check cannot parse: left to SimpleITK
    target = fields.get("data file", fields.get("datafile"))
    if target is None:
        data_file, offset = path, pos + max(byte_skip, 0)
    elif target.upper().startswith("LIST") or " " in target or "%" in target:
        return None
    else:
        data_file, offset = path.parent / target, byte_skip
    if byte_skip != 0 and compression != "raw":
        return None  # the skip applies to the decompressed data: left to SimpleITK
    if byte_skip < 0:
        offset = -1  # the data are the last bytes of the file
    return DataBlock(shape[::-1], item, data_file, offset, compression)
