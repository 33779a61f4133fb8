"""`ctstudio convert` as a user runs it: the bundled demo models on real CT crops, and clear errors."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ctstudio.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _ctstudio(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ctstudio.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, encoding="utf-8", timeout=600)


def _psnrs(stdout: str) -> dict:
    return {m[0]: float(m[1]) for m in re.findall(r"(input|output) vs reference: PSNR ([\d.]+) dB", stdout)}


@pytest.fixture(scope="module")
def crops(shared_data, tmp_path_factory):
    from ctstudio.io import read_volume, write_volume

    d = tmp_path_factory.mktemp("convert")
    ph = shared_data / "head-phantom-philips-2kernels"
    for k, f in (("UB", "phantom_UB-std_slices24-55.nii.gz"), ("YA", "phantom_YA-bone_slices24-55.nii.gz")):
        v = read_volume(ph / f)  # two held-back slices, the skull and an insert
        write_volume(v.with_array(v.array[-3:-1, 120:376, 120:376].copy()), d / f"{k}.nii.gz")
    v = read_volume(shared_data / "chest-ct-philips-bigbore" / "chest_ct_slices038-101.nii.gz")
    write_volume(v.with_array(v.array[-32:, 180:276, 200:296].copy()), d / "chest.nii.gz")  # held-back slab
    return d


def test_convert_ub_to_ya_comes_closer_to_the_real_ya(crops):
    res = _ctstudio("convert", crops / "UB.nii.gz", "--model", "ggcl-phantom-ub-ya", "--target", "YA",
                    "-o", crops / "UB2YA.nii.gz", "--reference", crops / "YA.nii.gz", cwd=crops)
    assert res.returncode == 0, res.stderr
    p = _psnrs(res.stdout)
    assert p["output"] > p["input"] + 0.5, res.stdout
    from ctstudio.io import read_volume

    out = read_volume(crops / "UB2YA.nii.gz")
    assert out.shape == (2, 256, 256)


def test_cgan_denoises_a_poisson_degraded_real_ct(crops):
    res = _ctstudio("convert", crops / "chest.nii.gz", "--model", "cgan-chest-denoise", "--degrade",
                    "--save-degraded", crops / "noisy.nii.gz", "-o", crops / "denoised.nii.gz",
                    "--reference", crops / "chest.nii.gz", cwd=crops)
    assert res.returncode == 0, res.stderr
    p = _psnrs(res.stdout)
    assert p["output"] > p["input"] + 1.0, res.stdout
    assert (crops / "noisy.nii.gz").exists() and (crops / "denoised.nii.gz").exists()


def test_bad_or_mismatched_model_files_give_clear_errors(crops, tmp_path, capsys):
    src = crops / "UB.nii.gz"
    assert main(["convert", str(src), "--model", "no-such-model", "-o", str(tmp_path / "o.nii.gz")]) == 2
    assert "no model named 'no-such-model'" in capsys.readouterr().err
    assert main(["convert", str(src), "--model", "ggcl-phantom-ub-ya", "--target", "B70f",
                 "-o", str(tmp_path / "o.nii.gz")]) == 2
    assert "UB, YA" in capsys.readouterr().err
    # a truncated weights file next to a valid JSON
    from ctstudio.checkpoints import resolve_model

    st = resolve_model("ggcl-phantom-ub-ya")
    (tmp_path / "cut.safetensors").write_bytes(st.read_bytes()[:1000])
    (tmp_path / "cut.json").write_text(st.with_suffix(".json").read_text())
    assert main(["convert", str(src), "--model", str(tmp_path / "cut.safetensors"), "-o", str(tmp_path / "o.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert "malformed" in err and "cut.safetensors" in err
    # a model of another kind
    meta = json.loads(st.with_suffix(".json").read_text())
    meta["kind"] = "score"
    (tmp_path / "score.safetensors").write_bytes(st.read_bytes())
    (tmp_path / "score.json").write_text(json.dumps(meta))
    assert main(["convert", str(src), "--model", str(tmp_path / "score.safetensors"), "-o", str(tmp_path / "o.nii.gz")]) == 2
    assert "takes ggcl or cgan" in capsys.readouterr().err
    assert not (tmp_path / "o.nii.gz").exists()


def test_convert_reference_and_evaluate_report_the_same_psnr_ssim(crops, tmp_path, capsys):
    """One PSNR/SSIM: `convert --reference` prints what `evaluate` writes for the same pair."""
    out = tmp_path / "UB2YA.nii.gz"
    assert main(["convert", str(crops / "UB.nii.gz"), "--model", "ggcl-phantom-ub-ya", "--target", "YA", "--quiet",
                 "-o", str(out), "--reference", str(crops / "YA.nii.gz")]) == 0
    printed = re.search(r"output vs reference: PSNR ([\d.]+) dB  SSIM ([\d.]+)", capsys.readouterr().out)
    assert main(["evaluate", "--real", str(crops / "YA.nii.gz"), "--fake", str(out), "--metrics", "psnr,ssim",
                 "--out", str(tmp_path / "ev")]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())["metrics"]
    assert float(printed[1]) == pytest.approx(metrics["psnr"]["mean"], abs=0.006)
    assert float(printed[2]) == pytest.approx(metrics["ssim"]["mean"], abs=6e-5)
