"""The training-data scan: what a folder holds and the problems it has, against values computed here."""

from __future__ import annotations

import numpy as np
import pytest

from ctstudio.errors import InputError
from ctstudio.imaging.phantom import head_phantom
from ctstudio.io import write_volume
from ctstudio.training.scan import scan_data_now


def test_scan_lists_an_unreadable_file_and_mixed_sizes(tmp_path):
    big = head_phantom(shape=(12, 32, 32), noise_sd=10.0, seed=0)
    small = head_phantom(shape=(6, 16, 16), seed=1)
    write_volume(big, tmp_path / "a_big.nii.gz")
    (tmp_path / "sub").mkdir()
    write_volume(small, tmp_path / "sub" / "b_small.nii.gz")
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b this is not a volume")
    (tmp_path / "README.txt").write_text("notes")
    s = scan_data_now(tmp_path, "score")
    assert len(s.volumes) == 3 and s.other_files == 1
    by_name = {v.path.split("/")[-1]: v for v in s.volumes}
    assert by_name["broken.nii.gz"].error and not by_name["broken.nii.gz"].used
    a = by_name["a_big.nii.gz"]
    assert a.used and a.shape_zyx == (12, 32, 32) and a.spacing_xyz_mm == (1.5, 1.5, 3.0)
    assert (a.hu_min, a.hu_max) == (float(big.array.min()), float(big.array.max()))
    assert by_name["b_small.nii.gz"].used  # score reads volumes in subfolders
    assert any("cannot read" in p and "broken.nii.gz" in p for p in s.problems)
    assert any(p.startswith("mixed in-plane sizes: 16x16 (1), 32x32 (1)") for p in s.problems)
    assert s.ok
    text = "\n".join(s.lines())
    assert "2 volume(s) readable" in text and "1 unreadable" in text and "[unreadable] broken.nii.gz" in text
    # the cGAN reads only the top level: the volume in sub/ is listed as not used, with the reason
    c = scan_data_now(tmp_path, "cgan")
    assert not {v.path.split("/")[-1]: v for v in c.volumes}["b_small.nii.gz"].used
    assert any("b_small.nii.gz: not used" in p for p in c.problems)


def test_scan_ggcl_kernels_and_a_kernel_with_no_pair(tmp_path):
    ub = head_phantom(shape=(10, 32, 32), seed=0)
    write_volume(ub, tmp_path / "scan_UB.nii.gz")
    write_volume(head_phantom(shape=(10, 32, 32), seed=2), tmp_path / "scan_B30.nii.gz")
    s = scan_data_now(tmp_path, "ggcl", "tiny")
    assert s.domains == ("UB", "YA")
    doms = {v.path.split("/")[-1]: v.domain for v in s.volumes}
    assert doms == {"scan_UB.nii.gz": "UB", "scan_B30.nii.gz": None}
    assert any(p.startswith("kernel YA has no volume") for p in s.problems)
    assert any("scan_B30.nii.gz" in p and "matches none" in p for p in s.problems)
    # the pair completed: the problem is gone
    write_volume(ub, tmp_path / "scan_YA.nii.gz")
    s = scan_data_now(tmp_path, "ggcl", "tiny")
    assert not any("has no volume" in p for p in s.problems)
    assert "kernels: UB x1, YA x1" in s.lines()


def test_scan_flags_values_that_are_not_hu_and_refuses_a_missing_folder(tmp_path):
    raw = head_phantom(shape=(4, 16, 16))
    shifted = raw.with_array((raw.array.astype(np.int32) + 1024).astype(np.int16), "stored values, not HU")
    write_volume(shifted, tmp_path / "raw_values.nii.gz")
    s = scan_data_now(tmp_path, "icnet")
    assert any("does not look like HU" in p for p in s.problems)
    with pytest.raises(InputError):
        scan_data_now(tmp_path / "nope", "icnet")


def test_scan_of_the_shared_two_kernel_phantom(shared_data):
    folder = shared_data / "head-phantom-philips-2kernels"
    s = scan_data_now(folder, "ggcl", "demo")
    used = {v.path.split("/")[-1]: (v.domain, v.shape_zyx) for v in s.used}
    # the README: UB and YA reconstructions of the same phantom scan, slices 24-55 (32 x 512 x 512)
    assert used == {"phantom_UB-std_slices24-55.nii.gz": ("UB", (32, 512, 512)),
                    "phantom_YA-bone_slices24-55.nii.gz": ("YA", (32, 512, 512))}
    assert not any("has no volume" in p or "differ in shape" in p for p in s.problems)
