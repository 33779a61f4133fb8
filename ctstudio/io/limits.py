"""How big a volume ctstudio agrees to allocate: a damaged or hostile header must not make it try
to allocate terabytes (a declared 100000^3 volume is refused before any allocation)."""

from __future__ import annotations

import os
from pathlib import Path

from ctstudio.errors import VolumeReadError

#: Fraction of physical memory one volume (with its read buffer) may take before we refuse.
MEMORY_FRACTION = 0.6


def memory_limit() -> int:
    """The bytes one volume read may use: :data:`MEMORY_FRACTION` of physical memory (16 GiB if unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * MEMORY_FRACTION)
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def check_allocation(shape, bytes_per_voxel: int, path: Path | str, *, what: str = "the header declares") -> None:
    """Refuse (:class:`VolumeReadError`) a volume of ``shape`` that would need more than :func:`memory_limit`."""
    n = 1
    for s in shape:
        n *= int(s)
    need = n * int(bytes_per_voxel)
    if need > memory_limit():
        raise VolumeReadError(
            f"{what} {'x'.join(str(int(s)) for s in shape)} voxels ({n * 2 / 2**30:.1f} GiB as int16), "
            "more than this machine can hold", path=path,
            hint="the header is probably damaged; check the file (or crop the volume first)")
