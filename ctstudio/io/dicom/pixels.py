"""Pass 2 of reading DICOM: decode each slice's pixels and rescale them to int16 HU.

Uncompressed little-endian slices are read straight from the file at the Pixel Data offset found in
pass 1 (``numpy.fromfile`` releases the GIL); compressed ones (JPEG 2000, JPEG-LS, RLE, ...) go
through pydicom + pylibjpeg, in worker processes when the caller opts in with ``workers >= 2``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ctstudio.errors import NotAnImageError, SeriesError, ValueRangeError, VolumeReadError
from ctstudio.io.dicom.header import SliceHeader
from ctstudio.io.dicom.series import report_every
from ctstudio.io.limits import check_allocation
from ctstudio.jobs import Progress, check_cancel

INT16 = np.iinfo(np.int16)
#: With ``workers >= 2``, compressed series at least this long are decoded in worker processes.
PROCESS_DECODE_MIN_FILES = 32


def decode_stored_values(h: SliceHeader) -> np.ndarray:
    """The stored pixel values of one slice (before rescale), as an integer array of Rows x Columns."""
    n = h.rows * h.columns
    if h.raw_value_offset >= 0 and h.bits_allocated in (8, 16, 32) and not h.big_endian:
        kind = ("i" if h.signed else "u") + str(h.bits_allocated // 8)
        dtype = np.dtype("<" + kind) if h.bits_allocated > 8 else np.dtype(kind)
        try:
            arr = np.fromfile(h.path, dtype=dtype, count=n, offset=h.raw_value_offset)
        except OSError as exc:
            raise VolumeReadError(f"cannot read the pixels ({exc})", path=h.path) from None
        if arr.size != n:
            raise NotAnImageError(f"the file is truncated: Pixel Data needs {n * dtype.itemsize} bytes "
                                  f"({h.rows} x {h.columns} pixels) but only {arr.size * dtype.itemsize} are there",
                                  path=h.path, hint="the copy was cut short; copy or export the file again")
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
            return pydicom.dcmread(h.path).pixel_array
    except Exception as exc:  # decoder errors: missing plug-in, damaged codestream, ...
        ts = h.transfer_syntax
        hint = ("install pylibjpeg and pylibjpeg-openjpeg for JPEG 2000" if "4.9" in ts
                else "re-export the file uncompressed")
        raise NotAnImageError(f"cannot decode the pixels (transfer syntax {ts}: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})", path=h.path, hint=hint) from None


def rescale_to_hu(stored: np.ndarray, h: SliceHeader, out: np.ndarray) -> None:
    """Rescale one slice's stored values to HU into ``out`` (int16), refusing values beyond int16."""
    if stored.shape != (h.rows, h.columns):
        expected = h.image_bytes
        present = stored.size * (h.bits_allocated // 8)
        raise SeriesError(f"decoded pixels have shape {stored.shape}, header says {h.rows} x {h.columns} "
                          f"({present} bytes decoded, {expected} declared)", path=h.path,
                          hint="the pixel data do not match the header; the file is damaged")
    exact = h.slope == 1.0 and float(h.intercept).is_integer()
    if exact and stored.dtype == np.int16 and h.intercept == 0:
        out[...] = stored
        return
    lo, hi = int(stored.min()), int(stored.max())
    lo, hi = sorted((lo * h.slope + h.intercept, hi * h.slope + h.intercept))
    if lo < INT16.min - 0.5 or hi > INT16.max + 0.5:
        raise ValueRangeError(
            f"after rescale (slope {h.slope:g}, intercept {h.intercept:g}) the values span [{lo:g}, {hi:g}], "
            f"beyond int16 [{INT16.min}, {INT16.max}]", path=h.path,
            hint="this does not look like CT in HU; check RescaleSlope/RescaleIntercept")
    if exact:
        np.add(stored, np.int32(int(h.intercept)), out=out, casting="unsafe")
    else:
        out[...] = np.clip(np.rint(stored.astype(np.float64) * h.slope + h.intercept), INT16.min, INT16.max)


def _decode_file(path: str, transfer_syntax: str) -> np.ndarray:
    """Process-pool entry point: decode one compressed file (errors come back as ctstudio errors)."""
    return decode_stored_values(SliceHeader(path=Path(path), transfer_syntax=transfer_syntax))


def _decode_in_processes(headers: list[SliceHeader], compressed: list[int], n_proc: int) -> dict[int, np.ndarray]:
    """Decode the compressed slices in a forkserver pool; on a broken pool, return nothing (decode here)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    try:
        with ProcessPoolExecutor(max_workers=n_proc, mp_context=multiprocessing.get_context(method)) as pool:
            arrays = pool.map(_decode_file, [str(headers[k].path) for k in compressed],
                              [headers[k].transfer_syntax for k in compressed], chunksize=4)
            return dict(zip(compressed, arrays))
    except (BrokenProcessPool, RuntimeError, OSError):
        return {}  # the pool could not start or broke: decode here instead


def load_pixels(headers: list[SliceHeader], workers: int | None = None, progress: Progress | None = None,
                cancel=None, done_before: int = 0) -> np.ndarray:
    """Decode and rescale every slice (sorted headers) into one int16 array ``(z, y, x)``.

    Uncompressed slices are read sequentially straight into place. Threads measured slower here
    (GIL-bound parsing, memory-bound copies); compressed slices go through pydicom + pylibjpeg, whose
    decoders hold the GIL, so the only parallel option is processes: opt in with ``workers >= 2`` (on a
    busy 2-core machine a process pool measured slower than decoding in place, hence not the default).
    Like any multiprocessing use, the calling script must guard its top level with
    ``if __name__ == "__main__":`` (the ``ctstudio`` entry point does).

    ``progress`` gets a ``"read"`` event every few files (``done`` counts from ``done_before``);
    ``cancel`` is checked before every file.
    """
    h0 = headers[0]
    check_allocation((len(headers), h0.rows, h0.columns), 2, h0.path, what="the series would need")
    out = np.empty((len(headers), h0.rows, h0.columns), dtype=np.int16)
    compressed = [k for k, h in enumerate(headers) if h.raw_value_offset < 0]
    decoded: dict[int, np.ndarray] = {}
    n_proc = 1 if workers is None else max(1, min(int(workers), len(compressed)))
    if len(compressed) >= PROCESS_DECODE_MIN_FILES and n_proc > 1:
        check_cancel(cancel, f"reading stopped before decoding the pixels (0 of {len(headers)} files)")
        decoded = _decode_in_processes(headers, compressed, n_proc)
    every = report_every(len(headers))
    for k, h in enumerate(headers):
        check_cancel(cancel, f"reading stopped while reading the pixels ({k} of {len(headers)} files)")
        if progress is not None and k % every == 0:
            progress.event("read", done_before + k, path=str(h.path))
        stored = decoded.pop(k) if k in decoded else decode_stored_values(h)
        rescale_to_hu(stored, h, out[k])
    return out
