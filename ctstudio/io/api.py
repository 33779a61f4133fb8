"""Dispatch: which reader or writer handles a path."""

from __future__ import annotations

from pathlib import Path

from ctstudio.errors import InputError, NotAnImageError, VolumeReadError
from ctstudio.volume import Volume

ITK_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")


def _has_suffix(path: Path, suffixes) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in suffixes)


def read_volume(path, **options) -> Volume:
    """Read a CT volume from a DICOM folder or file, or a NIfTI / MHA / NRRD file."""
    from ctstudio.io import itk

    p = Path(path)
    if not p.exists():
        raise VolumeReadError("no such file or folder", path=p, hint="check the path")
    if p.is_file() and _has_suffix(p, ITK_SUFFIXES):
        return itk.read_itk(p, **options)
    raise NotAnImageError("not a format ctstudio reads yet", path=p)


def write_volume(volume: Volume, path, **options) -> Path:
    """Write a volume; the format follows the extension (.nii.gz, .nii, .mha, .nrrd)."""
    from ctstudio.io import itk

    p = Path(path)
    if _has_suffix(p, ITK_SUFFIXES):
        return itk.write_itk(volume, p, **options)
    raise InputError(f"cannot tell the output format from {p.name!r}; use .nii.gz, .mha or .nrrd", path=p)


def inspect_path(path, series_uid: str | None = None) -> dict:
    """What ``ctstudio info`` prints: the volume's description plus format-specific checks."""
    p = Path(path)
    vol = read_volume(p, series_uid=series_uid) if series_uid else read_volume(p)
    fmt = "itk" if p.is_file() and _has_suffix(p, ITK_SUFFIXES) else "dicom"
    return {"path": str(p), "format": fmt, "volume": vol.describe()}
