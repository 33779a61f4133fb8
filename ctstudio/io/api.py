"""Dispatch: which reader or writer handles a path."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ctstudio.errors import InputError, NotAnImageError, VolumeReadError, VolumeWriteError
from ctstudio.io.policy import ERROR, RESAMPLE, ReadPolicy
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


def _refuse_unknown(function: str, unknown: dict, known: str) -> None:
    if unknown:
        names = ", ".join(sorted(unknown))
        raise InputError(f"{function}() got unknown option(s) {names}; it takes {known}",
                         hint="check the spelling of the option")


def read_volume(path, *, series_uid: str | None = None, tilt: str = ERROR, spacing: str = ERROR,
                workers: int | None = None, callback=None, cancel=None, **unknown) -> Volume:
    """Read a CT volume from a DICOM folder or file, or a NIfTI / MHA / NRRD file.

    - ``series_uid``: the DICOM series to read when a folder holds several (default: the largest CT series);
    - ``tilt``, ``spacing``: the reading policy for a series acquired with a gantry tilt, or with varying
      or missing slice spacing: ``"resample"`` (onto a regular axial grid, recommended), ``"as-acquired"``
      (slices kept, geometry approximate) or ``"error"`` (refuse, the default); see :mod:`ctstudio.io.policy`.
      NIfTI / MHA / NRRD hold a regular grid, so the policy does not change how they read;
    - ``workers``: >= 2 decodes long compressed DICOM series in that many processes;
    - ``callback``: receives :mod:`ctstudio.jobs` events of job ``"load"``, unit ``"file"`` (DICOM:
      ``"scan"`` per file of the folder, ``"read"`` per slice file, ``"resample"``, ``"done"``; other
      formats: one ``"read"`` and ``"done"``);
    - ``cancel``: a :class:`~ctstudio.jobs.CancelToken` (or callable), checked between files.

    ``nonuniform=`` is the older name of ``spacing=`` (and ``"report"`` of ``"error"``). An unknown
    option is an :class:`~ctstudio.errors.InputError`.
    """
    if "nonuniform" in unknown:
        spacing = unknown.pop("nonuniform")
    _refuse_unknown("read_volume", unknown, "series_uid, tilt, spacing, workers, callback, cancel")
    policy = ReadPolicy(tilt=tilt, spacing=spacing)
    p = Path(path)
    _check_exists(p)
    if p.is_dir() and _has_suffix(p, ITK_SUFFIXES):
        raise VolumeReadError("expected a file but found a folder", path=p)
    if not p.is_dir() and _has_suffix(p, ITK_SUFFIXES):
        from ctstudio.io import itk

        return itk.read_itk(p, callback=callback, cancel=cancel)
    from ctstudio.io.dicom import read_dicom

    return read_dicom(p, series_uid=series_uid, policy=policy, workers=workers, callback=callback, cancel=cancel)


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


def write_volume(volume: Volume, path, *, format: str | None = None, overwrite: bool | None = None,
                 synthetic: bool | None = None, copy_patient=None, series_description: str | None = None,
                 workers: int | None = None, **unknown) -> Path:
    """Write a volume. ``format=`` nifti | dicom | mha | nrrd; by default the extension decides
    (a path without a suffix, or ending in '/', is a DICOM series folder).

    ``overwrite``: replace an existing output (default: yes for a single file, no for a DICOM folder).
    DICOM only (NIfTI / MHA / NRRD files carry no such fields): ``synthetic=``, ``copy_patient=``,
    ``series_description=``, ``workers=``. An unknown option is an :class:`~ctstudio.errors.InputError`.
    """
    _refuse_unknown("write_volume", unknown, "format, overwrite, synthetic, copy_patient, series_description, "
                                             "workers")
    p = Path(path)
    fmt = _format_for(p, format)
    if fmt == "dicom":
        from ctstudio.io.dicom import write_dicom_series

        return write_dicom_series(volume, p, synthetic=synthetic, copy_patient=copy_patient,
                                  series_description=series_description, overwrite=bool(overwrite),
                                  workers=workers)
    from ctstudio.io import itk

    if not _has_suffix(p, ITK_SUFFIXES):
        raise InputError(f"format {fmt} needs a file name ending in "
                         f"{ {'nifti': '.nii.gz', 'mha': '.mha', 'nrrd': '.nrrd'}[fmt]}", path=p)
    if p.exists() and overwrite is False:
        raise VolumeWriteError("the output file exists", path=p, hint="choose another name or overwrite")
    return itk.write_itk(volume, p)


def inspect_path(path, series_uid: str | None = None, *, tilt: str = RESAMPLE, spacing: str = RESAMPLE,
                 workers: int | None = None, callback=None, cancel=None, **unknown) -> dict:
    """What ``ctstudio info`` prints: the volume's description plus format-specific checks.

    For DICOM: the series found, the chosen series, tilt, spacing uniformity and missing slices; the
    volume statistics are those of the volume read with ``tilt`` / ``spacing`` (default: resampled where
    the geometry needs it). Options as :func:`read_volume`.
    """
    if "nonuniform" in unknown:
        spacing = unknown.pop("nonuniform")
    _refuse_unknown("inspect_path", unknown, "series_uid, tilt, spacing, workers, callback, cancel")
    policy = ReadPolicy(tilt=tilt, spacing=spacing)
    p = Path(path)
    _check_exists(p)
    if _has_suffix(p, ITK_SUFFIXES):
        vol = read_volume(p, callback=callback, cancel=cancel)
        return {"path": str(p), "format": "itk", "volume": vol.describe()}
    from ctstudio.io.dicom import inspect_dicom

    report, vol = inspect_dicom(p, series_uid=series_uid, policy=policy, workers=workers, callback=callback,
                                cancel=cancel)
    out = {"path": str(p), "format": "dicom", **report}
    out["volume"] = vol.describe()
    return out
