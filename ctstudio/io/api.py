"""Dispatch: which reader or writer handles a path."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ctstudio.errors import InputError, NotAnImageError, VolumeReadError
from ctstudio.volume import Volume

#: the one list of volume-file suffixes ctstudio reads (lower case; a DICOM series is a folder or .dcm files)
ITK_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")
VOLUME_SUFFIXES = ITK_SUFFIXES
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
FORMATS = ("nifti", "dicom", "mha", "nrrd")


def is_volume_file(path) -> bool:
    """True for a NIfTI / MHA / NRRD file name (by suffix, any case)."""
    return _has_suffix(Path(path), ITK_SUFFIXES)


def _has_suffix(path: Path, suffixes) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in suffixes)


def _check_exists(p: Path) -> None:
    try:
        st = p.stat()
    except FileNotFoundError:
        raise VolumeReadError("no such file or folder", path=p, hint="check the path") from None
    except PermissionError:
        raise VolumeReadError("permission denied", path=p, hint="check the permissions") from None
    except OSError as exc:
        raise VolumeReadError(f"cannot access the path ({exc.strerror})", path=p) from None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise NotAnImageError("not a regular file or folder (a pipe, socket or device?)", path=p,
                              hint="give a DICOM folder or file, or a NIfTI / MHA / NRRD file")
    try:  # libraries report an unreadable file as missing; find out ourselves
        if stat.S_ISDIR(st.st_mode):
            os.listdir(p)
        else:
            with open(p, "rb"):
                pass
    except PermissionError:
        raise VolumeReadError("permission denied: this user may not read it", path=p,
                              hint="check the file's permissions and owner") from None
    except OSError as exc:
        raise VolumeReadError(f"cannot read it ({exc.strerror or exc})", path=p) from None


def read_volume(path, **options) -> Volume:
    """Read a CT volume from a DICOM folder or file, or a NIfTI / MHA / NRRD file.

    DICOM options (ignored by the other formats): ``series_uid=``, ``tilt="report"|"resample"``,
    ``nonuniform="report"|"resample"``, ``workers=``.
    """
    from ctstudio.io import dicom

    p = Path(path)
    _check_exists(p)
    if p.is_dir():
        if _has_suffix(p, ITK_SUFFIXES):
            raise VolumeReadError("expected a file but found a folder", path=p)
        return dicom.read_dicom(p, **options)
    if _has_suffix(p, ITK_SUFFIXES):
        from ctstudio.io import itk

        return itk.read_itk(p, **options)
    return dicom.read_dicom(p, **options)


def _format_for(p: Path, fmt: str | None) -> str:
    if fmt:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise InputError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith((".mha", ".mhd")):
        return "mha"
    if name.endswith((".nrrd", ".nhdr")):
        return "nrrd"
    if str(p).endswith(("/", "\\")) or p.is_dir() or not p.suffix:
        return "dicom"
    raise InputError(f"cannot tell the output format from {p.name!r}; use .nii.gz, .mha, .nrrd, "
                     "or a folder with format='dicom'", path=p)


def write_volume(volume: Volume, path, **options) -> Path:
    """Write a volume. ``format=`` nifti | dicom | mha | nrrd; by default the extension decides
    (a path without a suffix, or ending in '/', is a DICOM series folder).

    DICOM options: ``synthetic=``, ``copy_patient=``, ``series_description=``, ``overwrite=``.
    """
    p = Path(path)
    fmt = _format_for(p, options.pop("format", None))
    if fmt == "dicom":
        from ctstudio.io import dicom

        return dicom.write_dicom_series(volume, p, **options)
    from ctstudio.io import itk

    if not _has_suffix(p, ITK_SUFFIXES):
        raise InputError(f"format {fmt} needs a file name ending in "
                         f"{ {'nifti': '.nii.gz', 'mha': '.mha', 'nrrd': '.nrrd'}[fmt]}", path=p)
    for k in ("synthetic", "copy_patient", "series_description", "workers"):
        options.pop(k, None)
    overwrite = options.pop("overwrite", True)
    if p.exists() and not overwrite:
        from ctstudio.errors import VolumeWriteError

        raise VolumeWriteError("the output file exists", path=p, hint="choose another name or overwrite")
    return itk.write_itk(volume, p, **options)


def inspect_path(path, series_uid: str | None = None, **options) -> dict:
    """What ``ctstudio info`` prints: the volume's description plus format-specific checks.

    For DICOM: the series found, the chosen series, tilt, spacing uniformity and missing slices
    (the volume statistics are then taken after resampling, when the geometry needed it).
    """
    p = Path(path)
    _check_exists(p)
    if _has_suffix(p, ITK_SUFFIXES):
        vol = read_volume(p, **options)
        return {"path": str(p), "format": "itk", "volume": vol.describe()}
    from ctstudio.io import dicom

    report, vol = dicom.inspect_dicom(p, series_uid=series_uid, **options)
    out = {"path": str(p), "format": "dicom", **report}
    if vol is not None:
        out["volume"] = vol.describe()
    return out
