"""NIfTI / MHA / NRRD through SimpleITK.

SimpleITK reports geometry in LPS whatever the file format (it converts NIfTI's RAS on read and
back on write), so the Volume's origin/direction are LPS by construction.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ctstudio.errors import NotAnImageError, ValueRangeError, VolumeReadError, VolumeWriteError
from ctstudio.io.atomic import atomic_path
from ctstudio.io.integrity import check_volume_file
from ctstudio.io.limits import check_allocation
from ctstudio.jobs import Progress, check_cancel
from ctstudio.volume import Metadata, Provenance, Volume

_META_KEY = "ctstudio_metadata"


def _check_declared_size(path: Path) -> None:
    """Refuse, before allocating, a header (as SimpleITK reads it) that declares more voxels than memory holds."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return  # ReadImage below gives the proper "could not read" error
    check_allocation(reader.GetSize()[::-1], 4, path)  # the int16 volume plus a read buffer at least as wide


def _check_and_read(path: Path):
    """``(NaN / Inf count, SimpleITK image)``. A gzip NIfTI is decompressed once: the integrity check writes the
    bytes it decompresses to a temporary .nii, which SimpleITK then reads (bench/nifti_read_bench.py: 0.72x the
    time of checking and then letting SimpleITK decompress the 64x512x512 chest .nii.gz again)."""
    if not path.name.lower().endswith(".nii.gz"):
        nonfinite = check_volume_file(path)  # first: ITK itself crashes on some damaged headers
        _check_declared_size(path)
        return nonfinite, sitk.ReadImage(str(path))
    with tempfile.TemporaryDirectory(prefix="ctstudio-read-") as tmp:
        plain = Path(tmp) / "volume.nii"
        try:
            with open(plain, "wb") as sink:
                nonfinite = check_volume_file(path, copy_to=sink)
        except OSError:  # no room for the copy: check, then let SimpleITK decompress the file itself
            plain = path
            nonfinite = check_volume_file(path)
        _check_declared_size(path)
        return nonfinite, sitk.ReadImage(str(plain))


def read_itk(path: Path, callback=None, cancel=None) -> Volume:
    """Read a NIfTI / MHA / NRRD file as a HU Volume, after checking that it holds all the data its
    header declares (:mod:`ctstudio.io.integrity`). ``callback`` gets :mod:`ctstudio.jobs` events of job
    ``"load"`` (one ``"read"`` event, unit ``"file"``, then ``"done"``); ``cancel`` is checked before
    and after the read (SimpleITK reads the file in one call)."""
    path = Path(path)
    progress = Progress("load", total=1, unit="file", callback=callback)
    check_cancel(cancel, "reading stopped before it began")
    progress.event("read", 0, path=str(path))
    if path.stat().st_size == 0:
        raise NotAnImageError("the file is empty (0 bytes)", path=path)
    try:
        nonfinite, image = _check_and_read(path)
    except MemoryError:
        raise VolumeReadError("not enough memory to read the image", path=path) from None
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        raise NotAnImageError(
            f"SimpleITK could not read this file ({first})", path=path,
            hint="is it a complete NIfTI / MHA / NRRD file?",
        ) from None
    if image.GetDimension() not in (2, 3) or image.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeReadError(
            f"expected a single-channel 2D or 3D image, got {image.GetDimension()}D with "
            f"{image.GetNumberOfComponentsPerPixel()} components", path=path)
    check_cancel(cancel, "reading stopped after the file was read")
    arr = sitk.GetArrayFromImage(image)
    if arr.dtype.kind == "f" and nonfinite:
        raise ValueRangeError(f"the image holds {nonfinite} NaN or infinite values; CT voxels must be finite HU",
                              path=path, hint="fix the file where it was made (ctstudio will not guess a value)")
    if image.GetDimension() == 2:
        spacing = (*image.GetSpacing(), 1.0)
        origin = (*image.GetOrigin(), 0.0)
        d = np.asarray(image.GetDirection()).reshape(2, 2)
        direction = np.eye(3)
        direction[:2, :2] = d
        arr = arr[np.newaxis]
    else:
        spacing, origin = image.GetSpacing(), image.GetOrigin()
        direction = np.asarray(image.GetDirection()).reshape(3, 3)
    metadata, provenance = Metadata(), Provenance(source_files=(str(path),))
    if image.HasMetaDataKey(_META_KEY):
        try:
            saved = json.loads(image.GetMetaData(_META_KEY))
            metadata = Metadata.from_dict(saved.get("metadata", {}))
            old = Provenance.from_dict(saved.get("provenance", {}))
            provenance = Provenance(source_files=(str(path),), model=old.model, model_version=old.model_version,
                                    parameters=old.parameters, steps=old.steps)
        except (ValueError, TypeError):
            pass
    try:
        volume = Volume.from_hu(arr, spacing=spacing, origin=origin, direction=direction,
                                metadata=metadata, provenance=provenance)
    except ValueRangeError as exc:
        raise ValueRangeError(exc.message, path=path) from None
    progress.event("done", 1, shape=volume.shape)
    return volume


def write_itk(volume: Volume, path: Path) -> Path:
    """Write a NIfTI / MHA / NRRD file atomically (compressed for .nii.gz, .mha and .nrrd)."""
    path = Path(path)
    image = sitk.GetImageFromArray(volume.array)
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(float(v) for v in volume.direction.reshape(-1)))
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        # NIfTI has no free-text header fields SimpleITK writes; MHA/NRRD keep ours.
        image.SetMetaData(_META_KEY, json.dumps(
            {"metadata": volume.metadata.to_dict(), "provenance": volume.provenance.to_dict()}, default=str))
    try:
        with atomic_path(path) as tmp:
            sitk.WriteImage(image, str(tmp), useCompression=path.name.lower().endswith((".gz", ".mha", ".nrrd")))
    except RuntimeError as exc:
        raise VolumeWriteError(f"SimpleITK could not write the volume ({str(exc).strip().splitlines()[-1]})",
                               path=path) from None
    except OSError as exc:
        raise VolumeWriteError(f"could not write: {exc.strerror}", path=path) from None
    return path
