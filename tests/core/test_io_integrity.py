"""Corrupt and truncated files are errors, never volumes with zeros where the data ran out.

SimpleITK fills a short data block with zeros without a word, so ctstudio checks every NIfTI / MHA /
NRRD file's data against its header first. Expected sizes here are computed by hand from the shapes
(voxels x bytes per voxel) and from what zlib itself can decompress of the cut file.
"""

from __future__ import annotations

import gzip
import resource
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from ctstudio.errors import NotAnImageError, VolumeReadError
from ctstudio.io import read_volume

from test_io_helpers import tiny_volume, write_series


def _gzip_nifti_offset(data: bytes) -> int:
    head = zlib.decompressobj(31).decompress(data[:4096])
    return int(np.frombuffer(head[108:112], "<f4")[0])  # vox_offset of a little-endian NIfTI-1 header


def test_truncated_gzip_nifti_is_refused_naming_both_sizes(tmp_path, shared_data):
    src = shared_data / "chest-ct-philips-bigbore" / "chest_ct_slices038-101.nii.gz"
    cut = tmp_path / "chest_cut.nii.gz"
    data = src.read_bytes()[:300_000]  # the first 300 kB of a 16 MB file
    cut.write_bytes(data)
    declared = 64 * 512 * 512 * 2  # 64x512x512 int16
    present = len(zlib.decompressobj(31).decompress(data)) - _gzip_nifti_offset(data)
    assert 0 < present < declared
    with pytest.raises(NotAnImageError) as exc:
        read_volume(cut)
    msg = str(exc.value)
    assert str(cut) in msg and "truncated" in msg and "end-of-stream" in msg
    assert f"declares {declared} bytes" in msg and f"only {present} bytes are present" in msg


def test_complete_gzip_stream_of_a_cut_nifti_is_refused(tmp_path, sample_path):
    raw = gzip.decompress(sample_path.read_bytes())
    declared = len(raw) - _gzip_nifti_offset(sample_path.read_bytes())
    cut = tmp_path / "short.nii.gz"
    cut.write_bytes(gzip.compress(raw[:-5000]))  # a valid gzip stream, 5000 bytes of voxels short
    with pytest.raises(NotAnImageError, match=f"declares {declared} bytes .* only {declared - 5000} bytes"):
        read_volume(cut)


def test_gzip_nifti_with_a_bad_crc_is_refused(tmp_path, sample_path):
    data = bytearray(sample_path.read_bytes())
    data[-8] ^= 0xFF  # the CRC-32 of the gzip trailer
    bad = tmp_path / "bad_crc.nii.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(NotAnImageError, match="damaged.*CRC"):
        read_volume(bad)


def test_intact_files_of_every_format_still_read(tmp_path, sample_path):
    vol = read_volume(sample_path)
    img = sitk.ReadImage(str(sample_path))
    for name, compress in (("v.mha", False), ("v_z.mha", True), ("v.nrrd", False), ("v_z.nrrd", True),
                           ("v.mhd", False), ("v_z.mhd", True), ("v.nii", False)):
        sitk.WriteImage(img, str(tmp_path / name), useCompression=compress)
        assert np.array_equal(read_volume(tmp_path / name).array, vol.array), name


def _raw_image(tmp_path: Path, name: str, compress: bool) -> tuple[Path, int]:
    arr = (np.arange(6 * 40 * 50, dtype=np.int16).reshape(6, 40, 50) % 2000) - 1000
    p = tmp_path / name
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(p), useCompression=compress)
    return p, arr.size * 2


@pytest.mark.parametrize("name", ["v.mha", "v.nrrd"])
def test_truncated_raw_mha_and_nrrd_are_refused_naming_both_sizes(tmp_path, name):
    p, declared = _raw_image(tmp_path, name, compress=False)
    p.write_bytes(p.read_bytes()[:-1000])
    with pytest.raises(NotAnImageError) as exc:
        read_volume(p)
    msg = str(exc.value)
    assert str(p) in msg and "truncated" in msg
    assert f"declares {declared} bytes" in msg and f"only {declared - 1000} bytes" in msg


def test_truncated_raw_data_file_of_an_mhd_is_refused(tmp_path):
    p, declared = _raw_image(tmp_path, "v.mhd", compress=False)
    data_file = tmp_path / "v.raw"
    data_file.write_bytes(data_file.read_bytes()[:-7])
    with pytest.raises(NotAnImageError, match=f"declares {declared} bytes .* only {declared - 7} bytes"):
        read_volume(p)


@pytest.mark.parametrize("name", ["v.mha", "v.nrrd"])
def test_truncated_compressed_mha_and_nrrd_are_refused(tmp_path, name):
    p, declared = _raw_image(tmp_path, name, compress=True)
    p.write_bytes(p.read_bytes()[:-40])
    with pytest.raises(NotAnImageError, match=f"truncated.*end-of-stream.*declares {declared} bytes"):
        read_volume(p)


def test_short_dicom_pixel_data_is_refused_naming_both_sizes(tmp_path):
    f = write_series(tmp_path / "s", tiny_volume(shape=(1, 24, 20)))[0]
    ds = pydicom.dcmread(f)
    ds.PixelData = ds.PixelData[: 24 * 20]  # half of the 24 x 20 x 2 bytes
    ds.save_as(f)
    with pytest.raises(NotAnImageError) as exc:
        read_volume(f)
    msg = str(exc.value)
    assert f.name in msg and "Pixel Data holds 480 bytes" in msg and "needs 960" in msg


def test_dicom_cut_inside_pixel_data_is_refused_naming_both_sizes(tmp_path):
    f = write_series(tmp_path / "s", tiny_volume(shape=(1, 24, 20)))[0]
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(NotAnImageError, match="truncated: Pixel Data declares 960 bytes but only 860"):
        read_volume(f)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_huge_declared_size_is_refused_before_any_allocation(tmp_path):
    p = tmp_path / "huge.mha"
    p.write_bytes(b"ObjectType = Image\nNDims = 3\nDimSize = 100000 100000 100000\nElementType = MET_SHORT\n"
                  b"ElementDataFile = LOCAL\n" + bytes(64))
    before = _peak_rss_mb()
    with pytest.raises(VolumeReadError, match="declares 100000x100000x100000 voxels.*more than this machine"):
        read_volume(p)
    assert _peak_rss_mb() - before < 100  # nothing near 2 PB (or even 100 MB) was allocated


def test_declared_size_beyond_the_file_is_refused_before_allocation(tmp_path):
    raw = tmp_path / "big.nrrd"  # fits in memory (0.4 GB) but the file holds 64 bytes of it
    raw.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 600 600 600\nencoding: raw\nendian: little\n\n"
                    + bytes(64))
    before = _peak_rss_mb()
    with pytest.raises(NotAnImageError, match=f"declares {600**3 * 2} bytes .* only 64 bytes"):
        read_volume(raw)
    packed = tmp_path / "big.nii.gz"  # a few bytes of gzip cannot expand to 2000 x 2000 x 100 int16
    header = bytearray(352)
    header[0:4] = (348).to_bytes(4, "little")
    header[40:56] = np.array([3, 2000, 2000, 100, 1, 1, 1, 1], "<i2").tobytes()
    header[70:72], header[72:74] = (4).to_bytes(2, "little"), (16).to_bytes(2, "little")
    header[76:108] = np.ones(8, "<f4").tobytes()
    header[108:112] = np.array([352], "<f4").tobytes()
    header[344:348] = b"n+1\x00"
    packed.write_bytes(gzip.compress(bytes(header) + bytes(1000)))
    with pytest.raises(NotAnImageError, match="cannot expand to that much"):
        read_volume(packed)
    assert _peak_rss_mb() - before < 100
