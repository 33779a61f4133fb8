"""DICOM reading and writing: round trips, synthetic tags, sorting, several series, tilt, spacing, compression."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import ImplicitVRLittleEndian, JPEG2000Lossless

from ctstudio.errors import GeometryError, SeriesError, ValueRangeError, VolumeWriteError
from ctstudio.io import dicom, read_volume, write_volume
from ctstudio.io.dicom.header import read_header_fast, read_header_pydicom
from ctstudio.io.api import inspect_path
from ctstudio.volume import Metadata, Provenance, Volume

from test_io_helpers import SHAPE, edit, tilted_series, tiny_volume, uneven_series, write_series


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    def r(axis, a):
        c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
        m = np.eye(3)
        i, j = [k for k in range(3) if k != axis]
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        return m
    return r(2, az) @ r(1, ay) @ r(0, ax)


# -- round trip --------------------------------------------------------------------------------
def test_export_import_round_trips_voxels_exactly_and_geometry_to_1e4_mm(tmp_path):
    rng = np.random.default_rng(3)
    arr = rng.integers(-3024, 4000, size=(6, 20, 18)).astype(np.int16)
    arr[0, 0, 0], arr[0, 0, 1] = -32768, 32767  # the whole int16 range survives
    vol = Volume(arr, spacing=(0.4785156, 0.6123457, 1.25), origin=(-123.456789, 87.654321, -1042.5),
                 direction=rotation(12.5, -20.0, 33.0))
    out = write_volume(vol, tmp_path / "series", format="dicom")
    back = read_volume(out)
    assert back.array.dtype == np.int16 and np.array_equal(back.array, vol.array)
    assert np.allclose(back.origin, vol.origin, atol=1e-4)
    assert np.allclose(back.spacing, vol.spacing, atol=1e-4)
    assert np.allclose(back.direction, vol.direction, atol=1e-6)
    # an independent reader (GDCM via SimpleITK) sees the same geometry and voxels
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(out)))
    img = reader.Execute()
    assert np.array_equal(sitk.GetArrayFromImage(img), vol.array)
    assert np.allclose(img.GetOrigin(), vol.origin, atol=1e-4)
    assert np.allclose(img.GetSpacing(), vol.spacing, atol=1e-4)
    assert np.allclose(np.reshape(img.GetDirection(), (3, 3)), vol.direction, atol=1e-6)


def test_round_trip_keeps_metadata(tmp_path):
    md = Metadata(kernel="B30f", series_description="head 1mm", slice_thickness=1.0, manufacturer="SIEMENS",
                  manufacturer_model="Force", kvp=120.0, body_part="HEAD")
    vol = tiny_volume().replace(metadata=md, provenance=Provenance())
    back = read_volume(write_volume(vol, tmp_path / "s", format="dicom"))
    assert back.metadata == md
    assert not back.provenance.synthetic
    assert len(back.provenance.source_files) == SHAPE[0]


def test_write_volume_nifti_round_trip(tmp_path):
    vol = tiny_volume().replace(direction=rotation(0, 0, 30))
    back = read_volume(write_volume(vol, tmp_path / "v.nii.gz"))
    assert np.array_equal(back.array, vol.array)
    assert np.allclose(back.direction, vol.direction, atol=1e-5)
    assert np.allclose(back.origin, vol.origin, atol=1e-4)


# -- synthetic tags ------------------------------------------------------------------------------
def test_synthetic_series_carries_the_synthetic_tags_and_no_patient_ids(tmp_path, shared_data):
    seed_file = shared_data / "head-ct-cq500-single-slice" / "693_UNCR.dcm"
    seed = read_volume(seed_file)
    gen = seed.replace(provenance=Provenance(model="ascii-diffusion", model_version="1.2.3",
                                             parameters={"seed": 7}))
    files = sorted((write_volume(gen, tmp_path / "syn", format="dicom")).glob("*.dcm"))
    seed_ds = pydicom.dcmread(seed_file, stop_before_pixels=True)
    ds = pydicom.dcmread(files[0])
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert ds.SyntheticData == "YES"
    assert "SYNTHETIC" in ds.SeriesDescription.upper() and "ascii-diffusion" in ds.SeriesDescription
    eq = ds.ContributingEquipmentSequence[0]
    assert eq.ManufacturerModelName == "ascii-diffusion" and eq.SoftwareVersions == "1.2.3"
    for uid in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        assert ds.get(uid) and ds.get(uid) != seed_ds.get(uid)
    assert str(ds.PatientName) == "" and ds.PatientID == ""
    raw = files[0].read_bytes()
    assert b"CQ500" not in raw
    assert ds.SOPClassUID == dicom.CT_IMAGE_STORAGE
    # reading it back keeps it flagged as synthetic
    assert read_volume(tmp_path / "syn").provenance.model == "ascii-diffusion"


def test_synthetic_flag_and_explicit_patient_copy(tmp_path, shared_data):
    seed_file = shared_data / "head-ct-cq500-single-slice" / "693_UNCR.dcm"
    vol = tiny_volume()
    assert not vol.provenance.synthetic
    plain = pydicom.dcmread(sorted(write_volume(vol, tmp_path / "a", format="dicom").glob("*.dcm"))[0])
    assert list(plain.ImageType)[:2] == ["ORIGINAL", "PRIMARY"] and "SyntheticData" not in plain
    forced = sorted(write_volume(vol, tmp_path / "b", format="dicom", synthetic=True,
                                 copy_patient=seed_file).glob("*.dcm"))
    series_uids = {pydicom.dcmread(f).SeriesInstanceUID for f in forced}
    ds = pydicom.dcmread(forced[0])
    assert ds.SyntheticData == "YES" and ds.PatientID == "CQ500-CT-310"
    assert len(series_uids) == 1 and series_uids.pop() != plain.SeriesInstanceUID
    assert len({pydicom.dcmread(f).SOPInstanceUID for f in forced}) == len(forced)


# -- sorting and series --------------------------------------------------------------------------
def test_slices_sorted_by_position_not_by_file_name_or_instance_number(tmp_path):
    vol = tiny_volume()
    files = write_series(tmp_path / "s", vol)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(files))
    for n, f in enumerate(files):  # scramble names and InstanceNumbers
        edit(f, InstanceNumber=int(order[n]) + 1)
        f.rename(f.with_name(f"x{order[n]:03d}.dcm"))
    back = read_volume(tmp_path / "s")
    assert np.array_equal(back.array, vol.array)
    assert np.allclose(back.origin, vol.origin, atol=1e-4)


def test_folder_with_several_series_lists_them_and_defaults_to_the_largest_ct(tmp_path):
    folder = tmp_path / "mixed"
    big, small = tiny_volume(1), tiny_volume(2, shape=(5, 16, 16))
    write_series(tmp_path / "a", big)
    write_series(tmp_path / "b", small)
    write_series(tmp_path / "c", tiny_volume(3, shape=(12, 8, 8)))
    for f in (tmp_path / "c").glob("*.dcm"):
        edit(f, Modality="MR")  # the largest series, but not CT
    folder.mkdir()
    for name in "abc":
        for f in (tmp_path / name).glob("*.dcm"):
            shutil.move(f, folder / f"{name}_{f.name}")
    listing = dicom.list_series(folder)
    assert sorted((s["modality"], s["n_files"]) for s in listing) == [("CT", 5), ("CT", 8), ("MR", 12)]
    default = read_volume(folder)
    assert np.array_equal(default.array, big.array)
    uid_small = next(s["series_instance_uid"] for s in listing if s["n_files"] == 5)
    assert np.array_equal(read_volume(folder, series_uid=uid_small).array, small.array)
    with pytest.raises(SeriesError, match="no series with UID 1.2.3") as exc:
        read_volume(folder, series_uid="1.2.3")
    assert uid_small in str(exc.value)
    report = inspect_path(folder)
    assert len(report["series"]) == 3 and report["volume"]["shape_zyx"] == list(big.shape)


# -- geometry checks -----------------------------------------------------------------------------
def test_gantry_tilt_is_reported_with_its_angle(tmp_path):
    tilted_series(tmp_path / "t", 15.0)
    with pytest.raises(GeometryError, match=r"tilt of 15\.00 degrees"):
        read_volume(tmp_path / "t")
    assert inspect_path(tmp_path / "t")["tilt"].startswith("15.00")


def test_gantry_tilt_resampled_onto_an_axial_grid(tmp_path):
    truth = tilted_series(tmp_path / "t", 15.0)
    vol = read_volume(tmp_path / "t", tilt="resample")
    assert np.allclose(vol.direction, np.eye(3), atol=1e-6)  # axial
    assert any("tilt" in s for s in vol.provenance.steps)
    k, j, i = np.meshgrid(*(np.arange(n) for n in vol.shape), indexing="ij")
    pts = np.asarray(vol.origin) + np.stack([i, j, k], -1) * np.asarray(vol.spacing)
    inside = vol.array > -1024
    assert inside.mean() > 0.5
    err = np.abs(vol.array[inside] - truth(pts[inside]))
    assert err.max() <= 1.0


def test_nonuniform_spacing_reported_or_resampled(tmp_path):
    vol = tiny_volume()
    uneven_series(tmp_path / "n", vol)  # one step of 2.8 mm among 2.0 mm steps
    with pytest.raises(GeometryError, match="non-uniform slice spacing") as exc:
        read_volume(tmp_path / "n")
    assert "2.8" in str(exc.value)
    fixed = read_volume(tmp_path / "n", nonuniform="resample")
    assert fixed.spacing[2] == pytest.approx(2.0)
    assert fixed.shape[0] == 8  # 14.8 mm covered by 2 mm steps
    assert np.array_equal(fixed.array[:4], vol.array[:4])  # slices on the grid are copied exactly
    assert inspect_path(tmp_path / "n")["spacing_uniformity"].startswith("non-uniform")


def test_missing_slice_reported_by_name_or_interpolated(tmp_path):
    vol = tiny_volume()
    files = write_series(tmp_path / "m", vol)
    files[4].unlink()
    with pytest.raises(SeriesError, match="missing slice") as exc:
        read_volume(tmp_path / "m")
    assert files[3].name in str(exc.value) and files[5].name in str(exc.value)
    report = inspect_path(tmp_path / "m")
    assert report["geometry"]["missing_slices"][0]["after"] == files[3].name
    fixed = read_volume(tmp_path / "m", nonuniform="resample")
    assert fixed.shape == vol.shape
    mean = (vol.array[3].astype(float) + vol.array[5]) / 2
    assert np.abs(fixed.array[4] - mean).max() <= 0.5 + 1e-9
    assert np.array_equal(fixed.array[5:], vol.array[5:])


# -- pixel encodings -----------------------------------------------------------------------------
def test_rescale_slope_intercept_applied_per_slice(tmp_path):
    vol = tiny_volume()
    files = write_series(tmp_path / "r", vol)
    ds = pydicom.dcmread(files[2])
    stored = (vol.array[2].astype(np.int32) + 1024) // 2  # store HU as (stored * 2 - 1024)
    ds.PixelData = stored.astype("<i2").tobytes()
    ds.RescaleSlope, ds.RescaleIntercept = "2", "-1024"
    ds.save_as(files[2])
    back = read_volume(tmp_path / "r")
    assert np.array_equal(back.array[2], stored * 2 - 1024)
    assert np.array_equal(back.array[3], vol.array[3])


def test_rescale_beyond_int16_is_a_clear_error(tmp_path):
    files = write_series(tmp_path / "r")
    edit(files[0], RescaleSlope="100")
    with pytest.raises(ValueRangeError, match="beyond int16") as exc:
        read_volume(tmp_path / "r")
    assert files[0].name in str(exc.value)


def test_implicit_vr_unsigned_12bit_and_jpeg2000_in_one_series(tmp_path):
    vol = tiny_volume(shape=(6, 32, 32)).clip_to_12bit()
    files = write_series(tmp_path / "e", vol)
    for n, f in enumerate(files):
        ds = pydicom.dcmread(f)
        if n % 3 == 0:  # implicit VR, unsigned 12-bit stored, intercept -1024, junk in the high bits
            stored = (vol.array[n].astype(np.int32) + 1024).astype(np.uint16)
            assert stored.max() < 4096
            ds.PixelData = (stored | 0xF000).astype("<u2").tobytes()
            ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
            ds.RescaleIntercept = "-1024"
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
            ds.save_as(f, implicit_vr=True, little_endian=True)
        elif n % 3 == 1:
            ds.compress(JPEG2000Lossless)
            ds.save_as(f)
    assert pydicom.dcmread(files[1]).file_meta.TransferSyntaxUID == JPEG2000Lossless
    assert np.array_equal(read_volume(tmp_path / "e").array, vol.array)


def test_long_compressed_series_decoded_in_worker_processes(tmp_path, monkeypatch):
    vol = tiny_volume(shape=(6, 32, 32))
    files = write_series(tmp_path / "j", vol)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.compress(JPEG2000Lossless)
        ds.save_as(f)
    monkeypatch.setattr(dicom.pixels, "PROCESS_DECODE_MIN_FILES", 2)
    assert np.array_equal(read_volume(tmp_path / "j", workers=2).array, vol.array)


def test_fast_header_walker_agrees_with_pydicom(tmp_path, shared_data):
    import dataclasses

    files = [p for p in shared_data.rglob("*") if p.is_file() and (p.suffix == ".dcm" or p.name.startswith("CT."))]
    files += write_series(tmp_path / "s", tiny_volume())[:2]
    walked = 0
    for f in files:
        fast, slow = read_header_fast(f), read_header_pydicom(f)
        if fast is None:
            continue
        walked += 1
        for fld in dataclasses.fields(fast):
            a, b = getattr(fast, fld.name), getattr(slow, fld.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                assert np.array_equal(a, b), (f, fld.name)
            else:
                assert a == b, (f, fld.name, a, b)
    assert walked >= 25


# -- atomic writes -------------------------------------------------------------------------------
def test_failed_series_write_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = pydicom.dataset.Dataset.save_as

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(28, "No space left on device")
        return real(self, *a, **k)

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", flaky)
    with pytest.raises(VolumeWriteError, match="No space left"):
        write_volume(tiny_volume(), tmp_path / "out", format="dicom", workers=1)
    assert not (tmp_path / "out").exists()
    assert os.listdir(tmp_path) == []  # no temp folder left behind either


def test_existing_folder_needs_overwrite(tmp_path):
    write_series(tmp_path / "out", tiny_volume(1))
    with pytest.raises(VolumeWriteError, match="exists"):
        write_volume(tiny_volume(2), tmp_path / "out", format="dicom")
    assert np.array_equal(read_volume(tmp_path / "out").array, tiny_volume(1).array)
    write_volume(tiny_volume(2), tmp_path / "out", format="dicom", overwrite=True)
    assert np.array_equal(read_volume(tmp_path / "out").array, tiny_volume(2).array)
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_left_handed_volume_lands_in_the_same_lps_places(tmp_path):
    """NIfTI volumes are often left-handed (z = -(row x column)); DICOM stacks along row x column."""
    vol = tiny_volume().replace(direction=np.diag([1.0, 1.0, -1.0]), origin=(5.0, -7.0, 40.0))
    back = read_volume(write_volume(vol, tmp_path / "lh", format="dicom"))
    assert np.array_equal(back.array, vol.array[::-1])
    assert np.allclose(back.index_to_lps(0, 0, 0), vol.index_to_lps(vol.shape[0] - 1, 0, 0), atol=1e-4)
    assert np.allclose(back.index_to_lps(3, 5, 7), vol.index_to_lps(vol.shape[0] - 1 - 3, 5, 7), atol=1e-4)


def test_progress_callback_and_cancel(tmp_path):
    from ctstudio.errors import Cancelled
    from ctstudio.jobs import validate_event

    write_series(tmp_path / "s", tiny_volume())
    events = []
    read_volume(tmp_path / "s", callback=events.append)
    for e in events:
        validate_event(e)
    assert {(e["job"], e["unit"]) for e in events} == {("load", "file")}
    assert [e["stage"] for e in events] == ["scan"] * SHAPE[0] + ["read"] * SHAPE[0] + ["done"]
    assert [e["done"] for e in events] == list(range(2 * SHAPE[0] + 1))  # both passes over the 8 files
    assert all(e["total"] == 2 * SHAPE[0] for e in events)
    with pytest.raises(Cancelled):
        read_volume(tmp_path / "s", cancel=lambda: True)


def test_reads_a_series_written_by_gdcm_through_simpleitk(tmp_path):
    """A third-party writer (GDCM), oblique, with slope/intercept stored the scanner way."""
    vol = tiny_volume().clip_to_12bit().replace(direction=rotation(0, 15, 0), origin=(-20.5, 30.25, 77.0))
    img = sitk.GetImageFromArray(vol.array)  # GDCM stores (HU - intercept) / slope itself
    img.SetSpacing(vol.spacing)
    img.SetOrigin(vol.origin)
    img.SetDirection(tuple(vol.direction.reshape(-1)))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = pydicom.uid.generate_uid()
    d = vol.direction
    iop = "\\".join(f"{v:.10f}" for v in (*d[:, 0], *d[:, 1]))
    folder = tmp_path / "gdcm"
    folder.mkdir()
    for k in range(vol.shape[0]):
        sl = img[:, :, k]
        pos = img.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in (("0008|0060", "CT"), ("0020|000e", series_uid), ("0020|0037", iop),
                           ("0020|0032", "\\".join(f"{p:.10f}" for p in pos)), ("0020|0013", str(vol.shape[0] - k)),
                           ("0028|1052", "-1024"), ("0028|1053", "1"), ("0018|0050", "2.0")):
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"IMG{k:04d}.dcm"))
        writer.Execute(sl)
    ds = pydicom.dcmread(folder / "IMG0000.dcm")
    assert ds.RescaleIntercept == -1024 and ds.pixel_array.min() >= 0  # stored the scanner way
    back = read_volume(folder)
    assert np.array_equal(back.array, vol.array)
    assert np.allclose(back.origin, vol.origin, atol=1e-4)
    assert np.allclose(back.direction, vol.direction, atol=1e-6)
    assert np.allclose(back.spacing, vol.spacing, atol=1e-4)


def test_clipped_export_is_marked_derived(tmp_path):
    vol = tiny_volume().replace(provenance=Provenance())
    arr = vol.array.copy()
    arr[0, 0, 0] = -2000
    clipped = vol.replace(array=arr).clip_to_12bit()
    assert clipped.provenance.steps
    ds = pydicom.dcmread(sorted(write_volume(clipped, tmp_path / "c", format="dicom").glob("*.dcm"))[0])
    assert list(ds.ImageType)[:2] == ["DERIVED", "PRIMARY"] and "clip" in ds.ImageComments
    assert "SyntheticData" not in ds


def test_files_without_preamble_are_read_and_other_files_in_the_folder_ignored(tmp_path):
    vol = tiny_volume()
    files = write_series(tmp_path / "s", vol)
    for f in files:  # old-style files: no 128-byte preamble, no 'DICM'
        f.write_bytes(f.read_bytes()[132:])
    (tmp_path / "s" / "README.txt").write_text("scanned 2019\n")
    (tmp_path / "s" / "thumbs.db").write_bytes(bytes(range(256)) * 40)
    assert np.array_equal(read_volume(tmp_path / "s").array, vol.array)
    report = inspect_path(tmp_path / "s")
    assert report["n_ignored_files"] == 2
