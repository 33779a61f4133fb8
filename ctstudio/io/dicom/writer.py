"""Writing a Volume as a DICOM CT Image Storage series, one file per slice.

The files are built with pydicom (highdicom has no constructor for the classic single-frame CT IOD);
the series is written into a temporary folder and renamed into place, so a crash never leaves a
half-written series under the final name.
"""

from __future__ import annotations

import datetime as _dt
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ctstudio.errors import InputError, VolumeWriteError
from ctstudio.volume import Volume

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def write_in_threads(fn, items: list, workers: int | None) -> list:
    """``[fn(x) for x in items]`` in a thread pool of ``workers`` (default: up to 4; pydicom's file
    writing releases the GIL while it writes)."""
    n = min(4, os.cpu_count() or 1) if workers is None else int(workers)
    n = max(1, min(n, len(items)))
    if n <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(fn, items))


def patient_identifiers(copy_patient) -> dict[str, Any]:
    """The patient identifiers to write: from a DICOM file, a pydicom Dataset or a dict (none when ``None``)."""
    keys = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge")
    if copy_patient is None:
        return {}
    if isinstance(copy_patient, (str, os.PathLike)):
        import pydicom

        source = pydicom.dcmread(copy_patient, stop_before_pixels=True, force=True)
        return {k: source.get(k) for k in keys if source.get(k) not in (None, "")}
    if isinstance(copy_patient, dict):
        bad = set(copy_patient) - set(keys)
        if bad:
            raise InputError(f"copy_patient= accepts only {keys}, got {sorted(bad)}")
        return dict(copy_patient)
    return {k: copy_patient.get(k) for k in keys if copy_patient.get(k) not in (None, "")}  # a Dataset


def decimal_string(value: float) -> str:
    """``value`` as a DICOM decimal string (DS, at most 16 characters; tiny values written as 0)."""
    from pydicom.valuerep import format_number_as_ds

    v = float(value)
    if abs(v) < 1e-12:
        v = 0.0
    return format_number_as_ds(v)


def write_dicom_series(volume: Volume, folder, synthetic: bool | None = None, copy_patient=None,
                       series_description: str | None = None, overwrite: bool = False,
                       workers: int | None = None) -> Path:
    """Write ``volume`` as a CT Image Storage series, one file per slice, atomically into ``folder``.

    Voxels are stored as signed 16-bit HU (slope 1, intercept 0), so a re-import is exact; geometry
    (ImagePositionPatient, ImageOrientationPatient, PixelSpacing) is written to 14+ significant digits.
    Synthetic volumes (``volume.provenance.synthetic`` or ``synthetic=True``) are marked DERIVED\\SECONDARY,
    Synthetic Data = YES, with a synthetic Series Description and the model in Contributing Equipment.
    Patient identifiers are written only when ``copy_patient`` (a DICOM path, Dataset or dict) is given.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

    from ctstudio import __version__
    from ctstudio.io.atomic import atomic_dir

    folder = Path(folder)
    prov = volume.provenance
    synthetic = prov.synthetic if synthetic is None else bool(synthetic)
    md = volume.metadata
    patient = patient_identifiers(copy_patient)
    now = _dt.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    direction = volume.direction
    row, col, zdir = direction[:, 0], direction[:, 1], direction[:, 2]
    arr = volume.array
    origin = np.asarray(volume.origin, dtype=float)
    sx, sy, sz = volume.spacing
    if np.allclose(np.cross(row, col), -zdir, atol=1e-4):
        # left-handed (common in NIfTI): DICOM stacks slices along row x column, so write the
        # slices in reverse order from the far end; the same voxels land in the same LPS places.
        arr = arr[::-1]
        origin = origin + zdir * sz * (volume.shape[0] - 1)
        zdir = -zdir
    if not np.allclose(np.cross(row, col), zdir, atol=1e-4):
        raise VolumeWriteError("the volume's z axis is not row x column (a left-handed or sheared direction); "
                               "DICOM slices are ordered along row x column", path=folder,
                               hint="the direction matrix is not a rotation; fix the volume's geometry")
    model = prov.model or "unknown model"
    version = prov.model_version or ""
    desc = series_description or md.series_description or ("ctstudio volume" if not synthetic else "")
    if synthetic:
        desc = f"SYNTHETIC ({model}{' ' + version if version else ''})" + (f" {desc}" if desc else "")
    desc = desc[:64]

    base = Dataset()
    base.SpecificCharacterSet = "ISO_IR 192"
    if synthetic:
        base.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    elif prov.steps and any(not st.startswith("procedural") for st in prov.steps):
        base.ImageType = ["DERIVED", "PRIMARY", "AXIAL"]  # resampled or clipped since acquisition
    else:
        base.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    base.SOPClassUID = CT_IMAGE_STORAGE
    base.StudyDate = base.SeriesDate = base.ContentDate = date
    base.StudyTime = base.SeriesTime = base.ContentTime = time
    base.AccessionNumber = ""
    base.Modality = "CT"
    base.Manufacturer = "ctstudio" if synthetic else (md.manufacturer or "")[:64]
    base.ReferringPhysicianName = ""
    base.SeriesDescription = desc
    if not synthetic and md.manufacturer_model:
        base.ManufacturerModelName = md.manufacturer_model[:64]
    base.PatientName = patient.get("PatientName", "")
    base.PatientID = patient.get("PatientID", "")
    base.PatientBirthDate = patient.get("PatientBirthDate", "")
    base.PatientSex = patient.get("PatientSex", "")
    if patient.get("PatientAge"):
        base.PatientAge = patient["PatientAge"]
    if md.body_part:
        base.BodyPartExamined = md.body_part[:16]
    base.SliceThickness = decimal_string(md.slice_thickness if md.slice_thickness else sz)
    base.KVP = decimal_string(md.kvp) if md.kvp else ""
    base.SpacingBetweenSlices = decimal_string(sz)
    if md.kernel:
        base.ConvolutionKernel = md.kernel[:16]
    base.SoftwareVersions = f"ctstudio {__version__}"
    base.StudyInstanceUID = study_uid
    base.SeriesInstanceUID = series_uid
    base.StudyID = ""
    base.SeriesNumber = 1
    base.AcquisitionNumber = 1
    base.FrameOfReferenceUID = frame_uid
    base.PositionReferenceIndicator = ""
    base.ImageOrientationPatient = [decimal_string(v) for v in (*row, *col)]
    base.PixelSpacing = [decimal_string(sy), decimal_string(sx)]
    base.SamplesPerPixel = 1
    base.PhotometricInterpretation = "MONOCHROME2"
    base.Rows, base.Columns = volume.shape[1], volume.shape[2]
    base.BitsAllocated = 16
    base.BitsStored = 16
    base.HighBit = 15
    base.PixelRepresentation = 1
    base.RescaleIntercept = "0"
    base.RescaleSlope = "1"
    base.RescaleType = "HU"
    base.WindowCenter = "40"
    base.WindowWidth = "400"
    if synthetic:
        base.SyntheticData = "YES"
        base.DerivationDescription = f"Synthetic CT produced by {model} {version}".strip()[:1024]
        item = Dataset()
        item.Manufacturer = "ctstudio"
        item.ManufacturerModelName = model[:64]
        item.SoftwareVersions = (version or __version__)[:64]
        item.ContributionDescription = f"pixel data generated by {model} {version}".strip()[:1024]
        code = Dataset()
        code.CodeValue = "109103"
        code.CodingSchemeDesignator = "DCM"
        code.CodeMeaning = "Modifying Equipment"
        item.PurposeOfReferenceCodeSequence = Sequence([code])
        item.ContributionDateTime = now.strftime("%Y%m%d%H%M%S")
        base.ContributingEquipmentSequence = Sequence([item])
    if prov.steps:
        base.ImageComments = "; ".join(prov.steps)[:10240]

    z_step = zdir * sz

    def write_slice(args):
        k, tmp = args
        slice_dataset = Dataset()
        slice_dataset.update(base)
        sop_uid = generate_uid()
        slice_dataset.SOPInstanceUID = sop_uid
        slice_dataset.InstanceNumber = k + 1
        pos = origin + z_step * k
        slice_dataset.ImagePositionPatient = [decimal_string(v) for v in pos]
        slice_dataset.SliceLocation = decimal_string(pos @ zdir)
        slice_dataset.PixelData = np.ascontiguousarray(arr[k], dtype="<i2").tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        slice_dataset.file_meta = meta
        slice_dataset["PixelData"].VR = "OW"
        slice_dataset.save_as(tmp / f"CT{k + 1:05d}.dcm", enforce_file_format=True)

    try:
        with atomic_dir(folder, overwrite=overwrite) as tmp:
            write_in_threads(write_slice, [(k, tmp) for k in range(volume.shape[0])], workers)
    except FileExistsError:
        raise VolumeWriteError("the output folder exists and is not empty", path=folder,
                               hint="choose a new folder or pass overwrite=True (CLI: --overwrite)") from None
    except OSError as exc:
        raise VolumeWriteError(f"could not write the series ({exc.strerror or exc})", path=folder) from None
    except Exception as exc:
        if isinstance(exc, (VolumeWriteError, InputError)):
            raise
        raise VolumeWriteError(f"could not write the series ({type(exc).__name__}: {exc})", path=folder) from None
    return folder
