"""`ctstudio info` and `ctstudio export` as a user runs them: a subprocess, in a temp dir."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

ROOT = Path(__file__).resolve().parents[2]


def ctstudio(*args, cwd=None, user=None, check=True):
    cmd = [sys.executable, "-m", "ctstudio.cli", *map(str, args)]
    if user is not None:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.fail("setpriv (util-linux) is needed to run a command as an unprivileged user")
        cmd = [setpriv, f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    env.pop("CTSTUDIO_DEBUG", None)
    res = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", cwd=cwd, env=env, timeout=120)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def test_export_nifti_to_synthetic_dicom_and_back(tmp_path, sample_path):
    out = tmp_path / "synthetic_series"
    res = ctstudio("export", sample_path, out, "--format", "dicom", "--synthetic", "--model", "demo-model",
                   "--model-version", "0.3", cwd=tmp_path)
    assert "synthetic" in res.stdout
    files = sorted(out.glob("*.dcm"))
    ds = pydicom.dcmread(files[0])
    assert ds.SyntheticData == "YES" and ds.ContributingEquipmentSequence[0].ManufacturerModelName == "demo-model"
    info = json.loads(ctstudio("info", out, "--json", cwd=tmp_path).stdout)
    from ctstudio.io import read_volume

    src = {"volume": read_volume(sample_path).describe()}
    assert info["volume"]["shape_zyx"] == src["volume"]["shape_zyx"]
    assert info["volume"]["hu"] == src["volume"]["hu"]
    assert np.allclose(info["volume"]["spacing_xyz_mm"], src["volume"]["spacing_xyz_mm"], atol=1e-4)
    assert np.allclose(info["volume"]["origin_lps_mm"], src["volume"]["origin_lps_mm"], atol=1e-4)
    assert info["volume"]["provenance"]["model"] == "demo-model"
    assert len(info["series"]) == 1 and info["series"][0]["n_files"] == len(files)
    # and back to NIfTI, clipped to 12 bit
    back = tmp_path / "back.nii.gz"
    ctstudio("export", out, back, "--clip-12bit", cwd=tmp_path)
    again = json.loads(ctstudio("info", back, "--json", cwd=tmp_path).stdout)
    assert again["volume"]["hu"]["min"] >= -1024 and again["volume"]["hu"]["max"] <= 3071


def test_info_text_lists_series_and_geometry(tmp_path, shared_data):
    res = ctstudio("info", shared_data / "abdomen-ct-totalsegmentator-examples" / "example_ct_dicom", cwd=tmp_path)
    text = res.stdout
    assert "20 x 512 x 512" in text and "Br38f" in text
    assert "tilt:      none" in text and "uniform (2 mm)" in text
    assert "20 files" in text


def test_info_reports_missing_slices_and_export_refuses_them_unless_resampled(tmp_path, sample_path):
    series = tmp_path / "s"
    ctstudio("export", sample_path, series, "--format", "dicom", cwd=tmp_path)
    files = sorted(series.glob("*.dcm"))
    files[10].unlink()
    info = ctstudio("info", series, cwd=tmp_path)
    assert "missing:" in info.stdout and files[9].name in info.stdout
    bad = ctstudio("export", series, tmp_path / "x.nii.gz", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "missing slice" in bad.stderr and "--resample" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "x.nii.gz").exists()
    ctstudio("export", series, tmp_path / "x.nii.gz", "--resample", cwd=tmp_path)
    assert (tmp_path / "x.nii.gz").exists()


def test_unreadable_file_fails_cleanly_for_an_unprivileged_user(tmp_path, sample_path):
    """chmod 000 does not stop root, so the command runs as 'nobody' (uid 65534)."""
    if os.geteuid() != 0:
        pytest.fail("this test drops privileges with setpriv and must start as root (CI does)")
    folder = tmp_path / "public"
    folder.mkdir()
    secret = folder / "secret.nii.gz"
    shutil.copy(sample_path, secret)
    secret.chmod(0o000)
    for p in (tmp_path, folder):
        p.chmod(0o755)
    p = tmp_path
    while p != p.parent:  # nobody must be able to reach the folder (pytest's base is 0700)
        p.chmod(p.stat().st_mode | 0o001)  # search (x) only, so the path can be reached
        p = p.parent
    res = ctstudio("info", secret, cwd="/", user=65534, check=False)
    assert res.returncode == 2, res.stderr
    assert "permission denied" in res.stderr
    assert "Traceback" not in res.stderr and str(secret) in res.stderr


def test_errors_exit_nonzero_with_the_message(tmp_path):
    (tmp_path / "empty").mkdir()
    res = ctstudio("info", tmp_path / "empty", cwd=tmp_path, check=False)
    assert res.returncode == 2 and "folder is empty" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "notes.dcm").write_text("not an image")
    res = ctstudio("export", tmp_path / "notes.dcm", tmp_path / "o.nii.gz", cwd=tmp_path, check=False)
    assert res.returncode == 2 and "not a DICOM file" in res.stderr and "Traceback" not in res.stderr


def test_subcommands_have_help():
    for sub in ("info", "export"):
        res = ctstudio(sub, "--help")
        assert "usage: ctstudio " + sub in res.stdout
    assert "--synthetic" in ctstudio("export", "--help").stdout
