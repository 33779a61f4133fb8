"""`ctstudio info --json` on every real CT set in ../shared/data prints the shape, spacing and HU range
that ../shared/data/README.md documents; DICOM and NIfTI copies of the same scan agree in LPS."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctstudio import cli
from ctstudio.io import read_volume

# (relative path, shape z/y/x, spacing x/y/z (None: single slice, z not checked), HU min, HU max,
#  mean (or None), extra metadata)
SETS = [
    ("head-ct-vtk-headsq/headsq_64x64x93_raw-values.nii.gz", [93, 64, 64], [3.2, 3.2, 1.5], 0, 3926, 508, {}),
    ("head-ct-cq500-single-slice/693_UNCR.dcm", [1, 512, 512], [0.4785, 0.4785, None], -3024, 1468, None,
     {"kernel": "STANDARD", "series_description": "5/5mm Plain", "kvp": 140.0, "slice_thickness": 5.0}),
    ("head-ct-cq500-single-slice/693_J2KR.dcm", [1, 512, 512], [0.4785, 0.4785, None], -3024, 1468, None,
     {"kernel": "STANDARD", "kvp": 140.0}),
    ("head-phantom-philips-2kernels/phantom_UB-std_slices24-55.nii.gz", [32, 512, 512], [0.4512, 0.4512, 1.0],
     -1024, 1033, -751, {}),
    ("head-phantom-philips-2kernels/phantom_YA-bone_slices24-55.nii.gz", [32, 512, 512], [0.4512, 0.4512, 1.0],
     -1024, 3071, -751, {}),
    ("head-phantom-philips-2kernels/original_UB-std_slice040.dcm", [1, 512, 512], [0.4512, 0.4512, None],
     None, None, None, {"kernel": "UB", "manufacturer": "Philips", "manufacturer_model": "Ingenuity CT", "kvp": 120.0}),
    ("head-phantom-philips-2kernels/original_YA-bone_slice040.dcm", [1, 512, 512], [0.4512, 0.4512, None],
     None, None, None, {"kernel": "YA", "kvp": 120.0}),
    # B10/B70 headers carry no real spacing: readers report 1.0 (README); B30/B50 carry 0.6934.
    ("chest-ct-siemens-kernel-pairs/test1_B10.mha", [1, 512, 512], [1.0, 1.0, None], -1024, 619, -590, {}),
    ("chest-ct-siemens-kernel-pairs/test1_B30.mha", [1, 512, 512], [0.6934, 0.6934, None], -1024, 769, -590, {}),
    ("chest-ct-siemens-kernel-pairs/test1_B50.mha", [1, 512, 512], [0.6934, 0.6934, None], -1024, 1082, -590, {}),
    ("chest-ct-siemens-kernel-pairs/test1_B70.mha", [1, 512, 512], [1.0, 1.0, None], -1024, 1554, -590, {}),
    ("chest-ct-philips-bigbore/chest_ct_slices038-101.nii.gz", [64, 512, 512], [0.9766, 0.9766, 2.0],
     -1024, 2976, -691, {}),
    ("chest-ct-philips-bigbore/original_slice070.dcm", [1, 512, 512], [0.9766, 0.9766, None], None, None, None,
     {"kernel": "C", "manufacturer": "Philips", "kvp": 120.0}),
    ("abdomen-ct-totalsegmentator-examples/example_ct.nii.gz", [112, 101, 122], [3.0, 3.0, 3.0], -1207, 3382,
     None, {}),
    ("abdomen-ct-totalsegmentator-examples/example_ct_sm.nii.gz", [30, 101, 122], [3.0, 3.0, 3.0], None, None,
     None, {}),
    ("abdomen-ct-totalsegmentator-examples/example_ct_dicom", [20, 512, 512], [0.9766, 0.9766, 2.0], -1024, 1839,
     None, {"kernel": "Br38f", "manufacturer": "SIEMENS"}),
]


def info_json(path, capsys) -> dict:
    rc = cli.main(["info", str(path), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


@pytest.mark.parametrize("rel,shape,spacing,lo,hi,mean,meta", SETS, ids=[s[0].split("/")[-1] for s in SETS])
def test_info_json_matches_the_data_readme(shared_data, capsys, rel, shape, spacing, lo, hi, mean, meta):
    report = info_json(shared_data / rel, capsys)
    v = report["volume"]
    assert v["shape_zyx"] == shape
    for got, want in zip(v["spacing_xyz_mm"], spacing):
        if want is not None:
            assert got == pytest.approx(want, abs=1e-3)
    if lo is not None:
        assert (v["hu"]["min"], v["hu"]["max"]) == (lo, hi)
    if mean is not None:
        assert v["hu"]["mean"] == pytest.approx(mean, abs=15)
    for k, want in meta.items():
        assert v["metadata"][k] == want
    if report["format"] == "dicom":
        assert report["tilt"] == "none"
        assert v["metadata"]["modality"] == "CT"
        # never a patient identifier in what ctstudio reports
        text = json.dumps(report)
        assert "CQ500-CT-310" not in text and "PLASTIC" not in text


def test_abdomen_dicom_folder_is_jpeg2000_and_uniform(shared_data, capsys):
    folder = shared_data / "abdomen-ct-totalsegmentator-examples" / "example_ct_dicom"
    report = info_json(folder, capsys)
    assert report["spacing_uniformity"] == "uniform (2 mm)"
    assert report["series"][0]["n_files"] == 20
    assert report["geometry"]["missing_slices"] == []
    import pydicom

    first = next(folder.iterdir())
    assert pydicom.dcmread(first, stop_before_pixels=True).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"


def test_jpeg2000_slice_decodes_to_the_same_hu_as_the_uncompressed_one(shared_data):
    d = shared_data / "head-ct-cq500-single-slice"
    unc, j2k = read_volume(d / "693_UNCR.dcm"), read_volume(d / "693_J2KR.dcm")
    assert np.array_equal(unc.array, j2k.array)
    # brain tissue sits where a brain window expects it
    centre = unc.array[0, 200:300, 200:300]
    assert 0 < np.median(centre) < 80


@pytest.mark.parametrize("dcm,nii,k", [
    ("head-phantom-philips-2kernels/original_UB-std_slice040.dcm",
     "head-phantom-philips-2kernels/phantom_UB-std_slices24-55.nii.gz", 16),
    ("head-phantom-philips-2kernels/original_YA-bone_slice040.dcm",
     "head-phantom-philips-2kernels/phantom_YA-bone_slices24-55.nii.gz", 16),
    ("chest-ct-philips-bigbore/original_slice070.dcm", "chest-ct-philips-bigbore/chest_ct_slices038-101.nii.gz", 32),
])
def test_dicom_slice_equals_the_nifti_slice_at_the_same_lps_position(shared_data, dcm, nii, k):
    """NIfTI (RAS on disk) and DICOM (LPS) must land in the same LPS place with the same voxels."""
    a, b = read_volume(shared_data / dcm), read_volume(shared_data / nii)
    assert np.array_equal(a.array[0], b.array[k])
    assert np.allclose(a.origin, b.index_to_lps(k, 0, 0), atol=1e-3)
    assert np.allclose(a.direction, b.direction, atol=1e-6)


def test_nifti_direction_flip_is_reported_in_lps(shared_data):
    vol = read_volume(shared_data / "abdomen-ct-totalsegmentator-examples" / "example_ct.nii.gz")
    assert np.allclose(np.diag(vol.direction), [-1, -1, 1])
    assert vol.array.dtype == np.int16  # int32 on disk, values fit int16
