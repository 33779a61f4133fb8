"""`ctstudio train` as a user (or the window's child process) runs it: JSON lines, OUT/events.jsonl, resume,
SIGTERM / Ctrl-C as a cancel that leaves a checkpoint, and no run overwritten without being asked."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ctstudio.jobs import validate_event


def ctstudio(*args, cwd, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ctstudio.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=timeout)


def _lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_train_prints_json_lines_logs_them_in_out_and_resumes(tmp_path, sample_path):
    out = tmp_path / "run"
    args = ("train", "icnet", "--data", sample_path, "--config", "tiny", "--out", out, "--events", "jsonl",
            "--threads", "1")
    r = ctstudio(*args, "--steps", 10, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    events = _lines(r.stdout)
    for ev in events:
        validate_event(ev)
    stages = [e["stage"] for e in events]
    assert stages[0] == "start" and stages[-1] == "done" and "checkpoint" in stages
    step = next(e for e in events if e["stage"] == "step")
    assert step["job"] == "train" and step["unit"] == "step" and step["total"] == 10
    assert {"loss", "lr", "steps_per_s"} <= set(step)
    assert Path(events[-1]["path"]).is_file()
    assert _lines((out / "events.jsonl").read_text()) == events

    r2 = ctstudio(*args, "--steps", 20, "--resume", cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr
    ev2 = _lines(r2.stdout)
    assert ev2[0]["resumed"] is True and ev2[0]["done"] == 10 and ev2[-1]["done"] == 20
    assert _lines((out / "events.jsonl").read_text()) == events + ev2  # appended, not replaced


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_training_with_a_checkpoint_and_resume_finishes(tmp_path, sample_path, sig, status):
    out = tmp_path / "run"
    args = ["train", "icnet", "--data", sample_path, "--config", "tiny", "--out", out, "--threads", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "ctstudio.cli", *map(str, args), "--events", "jsonl",
                             "--steps", "1000000", "--checkpoint-every", "0"], cwd=tmp_path,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if json.loads(line)["stage"] == "step":
                break
        proc.send_signal(sig)
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == status, err
    assert "cancelled" in err and "--resume" in err and "Traceback" not in err
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    stopped = state["step"]
    assert 1 <= stopped < 1_000_000
    logged = _lines((out / "events.jsonl").read_text())
    assert logged[-1]["stage"] == "done" and logged[-1]["cancelled"] is True and logged[-1]["done"] == stopped
    assert logged[-2]["stage"] == "checkpoint"
    assert not list(out.glob("*.safetensors"))  # no final model from a cancelled run
    if sig != signal.SIGTERM:
        return
    r = ctstudio(*args, "--resume", "--steps", stopped + 3, "--events", "jsonl", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ev = _lines(r.stdout)
    assert ev[0]["resumed"] is True and ev[0]["done"] == stopped
    assert ev[-1]["stage"] == "done" and ev[-1]["done"] == stopped + 3 and not ev[-1]["cancelled"]
    card = json.loads(Path(ev[-1]["path"]).with_suffix(".json").read_text())["card"]
    assert card["steps"] == stopped + 3


def test_train_refuses_an_existing_run_without_resume_or_overwrite(tmp_path, sample_path):
    out = tmp_path / "run"
    args = ("train", "icnet", "--data", sample_path, "--config", "tiny", "--out", out, "--threads", "1")
    assert ctstudio(*args, "--steps", 3, cwd=tmp_path).returncode == 0
    model = next(out.glob("*.safetensors"))
    before = model.read_bytes()
    r = ctstudio(*args, "--steps", 2, cwd=tmp_path)
    assert r.returncode == 2 and "already holds a training run" in r.stderr
    assert "--resume" in r.stderr and "--overwrite" in r.stderr and "Traceback" not in r.stderr
    assert model.read_bytes() == before
    r = ctstudio(*args, "--steps", 2, "--overwrite", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(model.with_suffix(".json").read_text())["card"]["steps"] == 2
    log = _lines((out / "events.jsonl").read_text())  # a new log: one start, ending at step 2
    assert [e["stage"] for e in log].count("start") == 1 and log[-1]["done"] == 2
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 2


def test_train_with_a_bad_config_fails_cleanly(tmp_path, sample_path):
    r = ctstudio("train", "score", "--data", sample_path, "--config", "huge", "--out", tmp_path / "o", cwd=tmp_path)
    assert r.returncode == 2 and "neither a preset" in r.stderr and "Traceback" not in r.stderr
    cfg = tmp_path / "mine.json"
    cfg.write_text(json.dumps({"steps": 3}))
    r = ctstudio("train", "score", "--data", sample_path, "--config", cfg, "--out", tmp_path / "o", cwd=tmp_path)
    assert r.returncode == 2 and "base preset" in r.stderr and "Traceback" not in r.stderr
    assert all(p in r.stderr for p in ("'tiny'", "'demo'", "'paper'"))
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_two_processes_under_torchrun_stop_on_sigterm_and_resume(tmp_path, phantom_file):
    """--processes 2: torchrun + gloo; one event stream (rank 0), SIGTERM to the launcher stops every rank at one
    step with a checkpoint, --resume with two processes finishes and writes one model."""
    import time

    out = tmp_path / "run"
    args = [sys.executable, "-m", "ctstudio.cli", "train", "icnet", "--data", str(phantom_file), "--config", "tiny",
            "--out", str(out), "--device", "cpu", "--events", "jsonl", "--processes", "2", "--checkpoint-every", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*args, "--steps", "5000"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        assert first["stage"] == "start" and first["processes"] == 2 and first["global_batch"] == 8
        deadline = time.monotonic() + 240
        def stepped() -> bool:  # a "step" event logged (every event says "unit": "step": read the stages)
            log = out / "events.jsonl"
            return log.exists() and any('"stage": "step"' in line for line in log.read_text().splitlines())

        while not stepped():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    printed = [first, *_lines(rest)]
    logged = _lines((out / "events.jsonl").read_text())
    assert [(e["stage"], e["done"]) for e in logged] == [(e["stage"], e["done"]) for e in printed]  # once, not twice
    done = logged[-1]
    assert done["stage"] == "done" and done["cancelled"] is True and done["reason"] == "SIGTERM received"
    stopped_at = json.loads((out / "checkpoint" / "state.json").read_text())["step"]
    assert stopped_at == done["done"] and 0 < stopped_at < 5000
    assert not list(out.glob("*.safetensors"))
    r = subprocess.run([*args, "--steps", str(stopped_at + 4), "--resume"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    resumed = _lines(r.stdout)
    assert resumed[0]["resumed"] is True
    steps = [e["done"] for e in resumed if e["stage"] == "step"]
    assert steps[0] == stopped_at + 1 and steps[-1] == stopped_at + 4 and len(steps) == len(set(steps))
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["icnet-tiny.safetensors"]
    assert sum(1 for e in _lines((out / "events.jsonl").read_text()) if e["stage"] == "done") == 2
