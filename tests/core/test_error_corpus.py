"""A corpus of malformed inputs: each must give a specific ctstudio error (class + words), never a raw
library traceback, and ``ctstudio info`` must exit non-zero printing that message.

The corpus is generated here, in a temporary folder, from a tiny phantom series and NIfTI.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from ctstudio import cli
from ctstudio.errors import (
    CTStudioError,
    GeometryError,
    NotAnImageError,
    SeriesError,
    ValueRangeError,
    VolumeReadError,
)
from ctstudio.io import read_volume

from test_io_helpers import edit, tiny_volume, write_series


def _series(tmp: Path, name: str = "s", shape=(6, 24, 20)) -> list[Path]:
    return write_series(tmp / name, tiny_volume(shape=shape))


def _one(tmp: Path, name: str = "one.dcm") -> Path:
    f = _series(tmp, "src")[0]
    return Path(shutil.move(f, tmp / name))


def _nifti(tmp: Path, arr: np.ndarray, name="v.nii.gz") -> Path:
    p = tmp / name
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(p))
    return p


# --- builders: each returns the path a user would give ------------------------------------------
def truncated_header(tmp):
    f = _one(tmp)
    f.write_bytes(f.read_bytes()[:400])
    return f


def truncated_pixels(tmp):
    f = _one(tmp)
    data = f.read_bytes()
    f.write_bytes(data[: len(data) - 300])
    return f


def truncated_slice_in_series(tmp):
    files = _series(tmp)
    data = files[2].read_bytes()
    files[2].write_bytes(data[: len(data) // 2 + 200])
    return tmp / "s"


def not_dicom_text(tmp):
    f = tmp / "notes.dcm"
    f.write_text("Patient scanned on Monday; images to follow.\n" * 20)
    return f


def random_bytes_no_suffix(tmp):
    f = tmp / "IM0001"
    f.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return f


def no_pixel_data(tmp):
    f = _one(tmp)
    ds = pydicom.dcmread(f)
    del ds.PixelData
    ds.save_as(f)
    return f


def folder_without_images(tmp):
    files = _series(tmp)
    for f in files:
        ds = pydicom.dcmread(f)
        del ds.PixelData
        ds.save_as(f)
    return tmp / "s"


def mixed_modalities(tmp):
    files = _series(tmp)
    for f in files[:2]:
        edit(f, Modality="MR")
    return tmp / "s"


def inconsistent_rows_columns(tmp):
    files = _series(tmp)
    other = write_series(tmp / "o", tiny_volume(shape=(6, 16, 16)))
    series_uid = pydicom.dcmread(files[0]).SeriesInstanceUID
    edit(other[3], SeriesInstanceUID=series_uid)
    shutil.move(other[3], tmp / "s" / "odd.dcm")
    return tmp / "s"


def duplicate_positions(tmp):
    files = _series(tmp)
    shutil.copy(files[2], tmp / "s" / "copy_of_slice3.dcm")
    edit(tmp / "s" / "copy_of_slice3.dcm", SOPInstanceUID=pydicom.uid.generate_uid())
    return tmp / "s"


def nan_in_nifti(tmp):
    a = np.zeros((4, 8, 8), np.float32)
    a[1, 2, 3] = np.nan
    return _nifti(tmp, a)


def inf_in_nifti(tmp):
    a = np.zeros((4, 8, 8), np.float32)
    a[0, 0, 0] = np.inf
    return _nifti(tmp, a)


def beyond_int16_nifti(tmp):
    a = np.zeros((4, 8, 8), np.int32)
    a[0, 0, 0] = 70000
    return _nifti(tmp, a)


def vector_nifti(tmp):
    p = tmp / "rgb.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 8, 8, 3), np.uint8), isVector=True), str(p))
    return p


def garbage_nifti(tmp):
    p = tmp / "broken.nii.gz"
    p.write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 10)
    return p


def huge_declared_nifti(tmp):
    p = tmp / "huge.nii"
    hdr = bytearray(352)
    hdr[0:4] = (348).to_bytes(4, "little")
    dims = [3, 30000, 30000, 30000, 1, 1, 1, 1]
    hdr[40:56] = b"".join(d.to_bytes(2, "little", signed=True) for d in dims)
    hdr[70:72] = (4).to_bytes(2, "little")  # int16
    hdr[72:74] = (16).to_bytes(2, "little")
    hdr[76:108] = np.array([1, 1, 1, 1, 1, 1, 1, 1], "<f4").tobytes()
    hdr[108:112] = np.array([352], "<f4").tobytes()
    hdr[112:116] = np.array([1], "<f4").tobytes()  # scl_slope
    hdr[344:348] = b"n+1\x00"
    p.write_bytes(bytes(hdr) + bytes(1000))
    return p


def huge_declared_dicom(tmp):
    f = _one(tmp)
    edit(f, Rows=65535, Columns=65535)
    return f


def empty_folder(tmp):
    (tmp / "empty").mkdir()
    return tmp / "empty"


def folder_of_non_dicom(tmp):
    d = tmp / "docs"
    d.mkdir()
    for n in range(3):
        (d / f"readme{n}.txt").write_text("hello")
    return d


def zero_byte_dicom(tmp):
    f = tmp / "zero.dcm"
    f.write_bytes(b"")
    return f


def zero_byte_nifti(tmp):
    f = tmp / "zero.nii.gz"
    f.write_bytes(b"")
    return f


def directory_named_like_a_file(tmp):
    d = tmp / "scan.nii.gz"
    d.mkdir()
    (d / "x").write_text("x")
    return d


def fifo(tmp):
    p = tmp / "pipe.dcm"
    os.mkfifo(p)
    return p


def missing_path(tmp):
    return tmp / "no" / "such" / "scan.nii.gz"


def bad_transfer_syntax(tmp):
    f = _one(tmp)
    raw = f.read_bytes()
    explicit = b"1.2.840.10008.1.2.1\x00"
    assert raw.count(explicit) == 1
    f.write_bytes(raw.replace(explicit, b"1.2.840.10008.1.2.5\x00"))  # says RLE, holds raw pixels
    return f


def corrupt_jpeg2000(tmp):
    vol = tiny_volume(shape=(2, 32, 32))
    files = write_series(tmp / "j", vol)
    ds = pydicom.dcmread(files[0])
    ds.compress(pydicom.uid.JPEG2000Lossless)
    ds.save_as(files[0])
    raw = bytearray(files[0].read_bytes())
    soc = raw.find(b"\xff\x4f\xff\x51")  # start of codestream + image size marker
    assert soc > 0
    raw[soc + 4:soc + 40] = b"\xff" * 36  # wipe the image size segment
    files[0].write_bytes(bytes(raw))
    return files[0]


def colour_dicom(tmp):
    f = _one(tmp)
    ds = pydicom.dcmread(f)
    rgb = np.zeros((ds.Rows, ds.Columns, 3), np.uint8)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = rgb.tobytes()
    ds["PixelData"].VR = "OB"
    ds.save_as(f)
    return f


def multiframe_dicom(tmp):
    f = _one(tmp)
    ds = pydicom.dcmread(f)
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(f)
    return f


def mr_file(tmp):
    f = _one(tmp)
    edit(f, Modality="MR")
    return f


def only_mr_series(tmp):
    for f in _series(tmp):
        edit(f, Modality="MR")
    return tmp / "s"


def series_without_positions(tmp):
    files = _series(tmp)
    for f in files:
        edit(f, ImagePositionPatient=None)
    return tmp / "s"


def orientation_changes(tmp):
    files = _series(tmp)
    edit(files[3], ImageOrientationPatient=["0", "1", "0", "1", "0", "0"])
    return tmp / "s"


def rescale_overflow(tmp):
    f = _one(tmp)
    edit(f, RescaleSlope="1000")
    return f


def tilted_series(tmp):
    files = _series(tmp)
    for n, f in enumerate(files):
        edit(f, ImagePositionPatient=["0", f"{n * 0.5:.3f}", f"{n * 2.0:.3f}"])
    return tmp / "s"


CORPUS = [
    # (builder, error class, words that must appear in the message)
    (truncated_header, NotAnImageError, ["truncated"]),
    (truncated_pixels, NotAnImageError, ["truncated", "Pixel Data"]),
    (truncated_slice_in_series, NotAnImageError, ["truncated", "CT00003.dcm"]),
    (not_dicom_text, NotAnImageError, ["not a DICOM file"]),
    (random_bytes_no_suffix, NotAnImageError, ["not a DICOM file", "IM0001"]),
    (no_pixel_data, NotAnImageError, ["no image", "Pixel Data"]),
    (folder_without_images, NotAnImageError, ["no images", "Pixel Data"]),
    (mixed_modalities, SeriesError, ["mixes modalities", "MR"]),
    (inconsistent_rows_columns, SeriesError, ["differ in size", "16x16", "odd.dcm"]),
    (duplicate_positions, SeriesError, ["duplicate", "copy_of_slice3.dcm"]),
    (nan_in_nifti, ValueRangeError, ["NaN"]),
    (inf_in_nifti, ValueRangeError, ["infinite"]),
    (beyond_int16_nifti, ValueRangeError, ["int16", "70000"]),
    (vector_nifti, VolumeReadError, ["single-channel", "3 components"]),
    (garbage_nifti, NotAnImageError, ["could not read"]),
    (huge_declared_nifti, VolumeReadError, ["declares", "30000x30000x30000", "more than this machine"]),
    (huge_declared_dicom, NotAnImageError, ["65535 x 65535", "damaged"]),
    (empty_folder, NotAnImageError, ["folder is empty"]),
    (folder_of_non_dicom, NotAnImageError, ["no readable DICOM", "3 files"]),
    (zero_byte_dicom, NotAnImageError, ["empty (0 bytes)"]),
    (zero_byte_nifti, NotAnImageError, ["empty (0 bytes)"]),
    (directory_named_like_a_file, VolumeReadError, ["expected a file but found a folder"]),
    (fifo, NotAnImageError, ["not a regular file"]),
    (missing_path, VolumeReadError, ["no such file"]),
    (bad_transfer_syntax, NotAnImageError, ["cannot decode", "1.2.840.10008.1.2.5"]),
    (corrupt_jpeg2000, NotAnImageError, ["cannot decode", "1.2.840.10008.1.2.4.90"]),
    (colour_dicom, VolumeReadError, ["3 samples per pixel", "greyscale"]),
    (multiframe_dicom, VolumeReadError, ["multi-frame"]),
    (mr_file, SeriesError, ["MR, not CT"]),
    (only_mr_series, SeriesError, ["no CT series"]),
    (series_without_positions, SeriesError, ["ImagePositionPatient", "cannot be ordered"]),
    (orientation_changes, SeriesError, ["orientation changes"]),
    (rescale_overflow, ValueRangeError, ["beyond int16", "RescaleSlope"]),
    (tilted_series, GeometryError, ["gantry tilt", "14.04 degrees", "resample"]),
]


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 20
    assert len({b.__name__ for b, _, _ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("builder,cls,words", CORPUS, ids=[b.__name__ for b, _, _ in CORPUS])
def test_malformed_input_gives_a_specific_error(tmp_path, builder, cls, words):
    path = builder(tmp_path)
    with pytest.raises(CTStudioError) as exc:
        read_volume(path)
    err = exc.value
    assert type(err) is cls, f"{type(err).__name__}: {err}"
    msg = str(err)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    # the message names the file or folder the user gave (or the slice inside it)
    assert str(path) in msg or path.name in msg or str(path.parent) in msg


@pytest.mark.parametrize("builder,cls,words", CORPUS, ids=[b.__name__ for b, _, _ in CORPUS])
def test_cli_export_exits_nonzero_with_the_message(tmp_path, capsys, builder, cls, words, monkeypatch):
    monkeypatch.delenv("CTSTUDIO_DEBUG", raising=False)
    path = builder(tmp_path)
    rc = cli.main(["export", str(path), str(tmp_path / "out.nii.gz")])
    out, err = capsys.readouterr()
    assert rc == 2
    assert err.startswith("error: ") and all(w in err for w in words)
    assert "Traceback" not in err + out
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize("builder", [truncated_header, not_dicom_text, duplicate_positions, empty_folder,
                                     directory_named_like_a_file, corrupt_jpeg2000, huge_declared_nifti])
def test_cli_info_exits_nonzero_with_the_message(tmp_path, capsys, builder, monkeypatch):
    monkeypatch.delenv("CTSTUDIO_DEBUG", raising=False)
    words = next(w for b, _, w in CORPUS if b is builder)
    rc = cli.main(["info", str(builder(tmp_path))])
    out, err = capsys.readouterr()
    assert rc == 2 and err.startswith("error: ") and all(w in err for w in words)
    assert "Traceback" not in err + out


def test_damaged_dicom_never_escapes_as_a_library_exception(tmp_path):
    """Cut a valid slice at every few bytes and flip random bytes: every outcome is a Volume or a
    ctstudio error, never a raw pydicom / numpy / struct exception, and no warnings wall."""
    import warnings

    f = write_series(tmp_path / "s", tiny_volume(shape=(2, 16, 16)))[0]
    data = f.read_bytes()
    target = tmp_path / "t.dcm"
    rng = np.random.default_rng(0)
    cuts = [data[:cut] for cut in range(0, len(data), 13)]
    cases = list(cuts)
    for _ in range(150):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 6))):
            b[int(rng.integers(128, len(b) - 512))] = int(rng.integers(0, 256))
        cases.append(bytes(b))
    read_back = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning that leaks out fails the test
        for n, blob in enumerate(cases):
            target.write_bytes(blob)
            try:
                read_volume(target)
                read_back.append(n)
            except CTStudioError:
                pass
    assert not [n for n in read_back if n < len(cuts)]  # every truncated copy is refused
