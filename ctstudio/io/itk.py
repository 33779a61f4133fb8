"""NIfTI / MHA / NRRD through SimpleITK.

SimpleITK reports geometry in LPS whatever the file format (it converts NIfTI's RAS on read and
back on write), so the Volume's origin/direction are LPS by construction.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ctstudio.errors import NotAnImageError, ValueRangeError, VolumeReadError, VolumeWriteError
from ctstudio.io.atomic import atomic_path
from ctstudio.volume import Metadata, Provenance, Volume

_META_KEY = "ctstudio_metadata"


def _check_declared_size(path: Path) -> None:
    """Refuse, before allocating, a header that declares more voxels than memory (or the file) can hold."""
    from ctstudio.io.dicom import _memory_limit

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return  # ReadImage below gives the proper "could not read" error
    n = 1
    for s in reader.GetSize():
        n *= int(s)
    if n * 4 > _memory_limit():  # the int16 volume plus a read buffer at least as wide
        raise VolumeReadError(
            f"the header declares {'x'.join(str(s) for s in reader.GetSize())} voxels "
            f"({n * 2 / 2**30:.1f} GiB as int16), more than this machine can hold", path=path,
            hint="the header is probably damaged; check the file")


def _nifti_nonfinite(path: Path) -> int:
    """Count NaN/Inf voxels in a float NIfTI's raw data (ITK's NIfTI reader turns them into 0 silently)."""
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            hdr = fh.read(348)
            if len(hdr) < 348:
                return 0
            endian = "<" if int.from_bytes(hdr[0:4], "little") == 348 else ">"
            datatype = int(np.frombuffer(hdr[70:72], endian + "i2")[0])
            dtype = {16: "f4", 64: "f8"}.get(datatype)
            if dtype is None:
                return 0
            offset = int(np.frombuffer(hdr[108:112], endian + "f4")[0])
            fh.read(max(0, offset - 348))
            bad = 0
            while True:
                chunk = fh.read(1 << 24)
                if not chunk:
                    break
                usable = len(chunk) - len(chunk) % np.dtype(dtype).itemsize
                bad += int(np.count_nonzero(~np.isfinite(np.frombuffer(chunk[:usable], endian + dtype))))
            return bad
    except (OSError, EOFError, ValueError):
        return 0


def read_itk(path: Path, **_options) -> Volume:
    path = Path(path)
    if path.stat().st_size == 0:
        raise NotAnImageError("the file is empty (0 bytes)", path=path)
    _check_declared_size(path)
    try:
        image = sitk.ReadImage(str(path))
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
    arr = sitk.GetArrayFromImage(image)
    if arr.dtype.kind == "f" and path.name.lower().endswith((".nii", ".nii.gz")):
        bad = _nifti_nonfinite(path)
        if bad:
            raise ValueRangeError(f"the image holds {bad} NaN or infinite values; CT voxels must be finite HU",
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
        return Volume.from_hu(arr, spacing=spacing, origin=origin, direction=direction,
                              metadata=metadata, provenance=provenance)
    except ValueRangeError as exc:
        raise ValueRangeError(exc.message, path=path) from None


def write_itk(volume: Volume, path: Path, **_options) -> Path:
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
