"""The generation CLI as a user runs it: generate, calibrate, models list (train: test_cli_train.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def ctstudio(*args, cwd, env_extra=None, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "ctstudio.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=timeout)


@pytest.mark.slow
def test_generate_continues_the_sample_and_writes_a_synthetic_volume(tmp_path, sample_path):
    from ctstudio.io import read_volume

    out = tmp_path / "out.nii.gz"
    r = ctstudio("generate", "--slices", 2, "--seed-volume", sample_path, "--seed-slice", 20, "--seed", 1,
                 "--threads", 1, "-o", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "IC-Net on" in r.stdout
    vol = read_volume(out)
    seed = read_volume(sample_path)
    assert vol.shape == (2, 64, 64)
    assert np.allclose(vol.origin, seed.index_to_lps(18, 0, 0), atol=1e-3)
    assert vol.array.min() >= -1024 and vol.array.max() <= 3071


def test_generate_refuses_a_k_that_does_not_match_the_model(tmp_path):
    r = ctstudio("generate", "--slices", 1, "--k", 3, "-o", tmp_path / "x.nii.gz", cwd=tmp_path)
    assert r.returncode == 2
    assert "--k 3 does not match" in r.stderr and "Traceback" not in r.stderr


def test_generate_with_a_missing_model_says_what_to_do(tmp_path):
    r = ctstudio("generate", "--model", "no-such-model", "--slices", 1, "-o", tmp_path / "x.nii.gz", cwd=tmp_path)
    assert r.returncode == 2
    assert "no model named 'no-such-model'" in r.stderr and "score-k2-demo" in r.stderr


def test_models_list_json_shows_the_bundled_demos(tmp_path):
    r = ctstudio("models", "list", "--json", cwd=tmp_path, env_extra={"CTSTUDIO_MODELS": str(tmp_path / "none")})
    assert r.returncode == 0, r.stderr
    models = {m["name"]: m for m in json.loads(r.stdout)}
    assert models["score-k2-demo"]["kind"] == "score" and Path(models["score-k2-demo"]["path"]).is_file()
    assert models["icnet-demo"]["kind"] == "icnet"


def test_calibrate_writes_a_volume_that_differs_only_in_the_roi(tmp_path, sample_path):
    from ctstudio.io import read_volume, write_volume

    src = read_volume(sample_path)
    small = src.with_array(src.array[40:44].copy())
    inp = tmp_path / "in.nii.gz"
    write_volume(small, inp)
    out = tmp_path / "cal.nii.gz"
    r = ctstudio("calibrate", inp, "-o", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cal = read_volume(out).array
    outside = (small.array <= -150) | (small.array >= 150)
    assert np.array_equal(cal[outside], small.array[outside])
    assert np.array_equal(cal[-1], small.array[-1])  # the anchor (most superior) slice is kept


def test_the_cli_writes_what_the_pipeline_returns(tmp_path, sample_path):
    """Same request, same seed: `ctstudio generate` and the generate pipeline give the same volume."""
    from ctstudio.cli import main
    from ctstudio.io import read_volume
    from ctstudio.jobs import run_job
    from ctstudio.pipelines.generate import GenerateRequest, generate

    out = tmp_path / "g.nii.gz"
    assert main(["generate", "--slices", "2", "--seed-volume", str(sample_path), "--seed-slice", "20", "--steps", "3",
                 "--seed", "7", "--quiet", "-o", str(out)]) == 0
    vol = run_job(generate(GenerateRequest(n_slices=2, seed_volume=read_volume(sample_path), seed_slice=20, steps=3,
                                           seed=7)))
    written = read_volume(out)
    assert np.array_equal(written.array, vol.array)
    assert np.allclose(written.origin, vol.origin) and np.allclose(written.spacing, vol.spacing)
