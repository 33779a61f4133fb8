"""The generation CLI as a user runs it: generate, calibrate, models list, train --events jsonl."""

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


@pytest.mark.slow
def test_train_prints_json_lines_and_resumes(tmp_path, sample_path):
    args = ("train", "icnet", "--data", sample_path, "--config", "tiny", "--out", tmp_path / "run",
            "--events", "jsonl", "--threads", "1")
    r = ctstudio(*args, "--steps", 10, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "checkpoint" in kinds
    step = next(e for e in events if e["event"] == "step")
    assert {"step", "loss", "lr", "steps_per_s", "eta_s"} <= set(step)
    assert Path(events[-1]["path"]).is_file()
    r2 = ctstudio(*args, "--steps", 20, "--resume", cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr
    ev2 = [json.loads(line) for line in r2.stdout.splitlines()]
    assert ev2[0]["resumed"] is True and ev2[0]["step"] == 10 and ev2[-1]["step"] == 20


def test_train_with_a_bad_config_fails_cleanly(tmp_path, sample_path):
    r = ctstudio("train", "score", "--data", sample_path, "--config", "huge", "--out", tmp_path, cwd=tmp_path)
    assert r.returncode == 2 and "neither a preset" in r.stderr and "Traceback" not in r.stderr
