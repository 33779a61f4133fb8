"""Writes that a crash cannot half-do: SIGKILL at random moments during a DICOM series export, a model
bundle write (checkpoints.save_model), a training checkpoint write (Trainer.save_checkpoint) and a conversion
(``ctstudio convert`` to .nii.gz). Afterwards the output is the complete old or the complete new version,
never a partial one. Also: written files and folders get the umask's permissions, not mkstemp's 0600.

Each scenario runs a launcher process that imports ctstudio once, writes the old version, then forks a writer
per kill: the writer rewrites the output in a loop (new, old, new, ...) until the test SIGKILLs it after a
random delay. The kill lands while a version is being written (or between two writes)."""

import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ctstudio.io import atomic

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20

LAUNCHER = textwrap.dedent(r"""
    import os, sys, json
    import numpy as np
    os.environ["OMP_NUM_THREADS"] = "1"
    kind, out, work = sys.argv[1], sys.argv[2], sys.argv[3]
    from ctstudio.imaging.phantom import head_phantom
    from ctstudio.io import write_volume

    def volume(v):
        return head_phantom((4, 16, 16), noise_sd=10.0, seed=v)

    if kind == "dicom":
        vols = [volume(0), volume(1)]
        def write(v):
            write_volume(vols[v], out, format="dicom", overwrite=True)
    elif kind in ("model", "checkpoint"):
        import torch
        torch.set_num_threads(1)
        from ctstudio import checkpoints
        if kind == "model":
            from ctstudio.models.icnet import ICNet, ICNetConfig
            cfg = ICNetConfig.tiny()
            nets = []
            for v in (0, 1):
                torch.manual_seed(v)
                nets.append(ICNet(cfg))
            def write(v):
                checkpoints.save_model(os.path.dirname(out), "m", "icnet", {"net": nets[v]},
                                       {"net": cfg.to_dict()}, {"summary": f"version {v}"})
        else:
            from ctstudio.training.recipes import build_recipe
            from ctstudio.training.trainer import Trainer
            data = os.path.join(work, "phantom.nii.gz")
            write_volume(head_phantom(shape=(12, 32, 32), noise_sd=10.0, seed=0), data)
            torch.manual_seed(0)
            t = Trainer(build_recipe("icnet", "tiny", data), out_dir=out, max_steps=2, checkpoint_every=100,
                        seed=0, data_dir=data, log_every=1)
            t.run()  # a real (2-step) run: its networks, EMA and optimizer state are what a checkpoint holds
            weights = {k: p.detach().clone() for k, p in t.modules["net"].state_dict().items()}
            def write(v):
                t.step = 100 + v
                with torch.no_grad():
                    for k, p in t.modules["net"].state_dict().items():
                        p.copy_(weights[k] + v)
                t.save_checkpoint()
    elif kind == "convert":
        from ctstudio.cli import main
        ins = [os.path.join(work, f"in{v}.nii.gz") for v in (0, 1)]
        for v in (0, 1):
            write_volume(head_phantom((8, 32, 32), noise_sd=10.0, seed=v), ins[v])
        import contextlib
        quiet = open(os.devnull, "w")
        def write(v):
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                rc = main(["convert", ins[v], "--model", "cgan-chest-denoise", "--overlap", "0", "--device",
                           "cpu", "-o", out, "--overwrite"])
            assert rc == 0
    import time
    write(0)
    write(1)
    t0 = time.perf_counter()
    write(0)  # the old version, in place before the first kill
    print("ready", time.perf_counter() - t0, flush=True)
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            v = 1
            while True:
                write(v)
                v = 1 - v
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print("reaped", status, flush=True)
""")


def _start(kind: str, out: Path, work: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-c", LAUNCHER, kind, str(out), str(work)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    line = p.stdout.readline()
    if not line.startswith("ready"):
        p.kill()
        raise AssertionError(f"launcher failed: {line}{p.stderr.read()}")
    p.write_seconds = float(line.split()[1])  # one write, measured: kills are spread over a few of them
    return p


def _kill_loop(p: subprocess.Popen, rnd: random.Random, check, max_delay: float) -> dict:
    """KILLS forks of the writer, each SIGKILLed after a random delay; ``check()`` after each returns an
    outcome name. Returns the outcome counts."""
    counts: dict[str, int] = {}
    for _ in range(KILLS):
        p.stdin.write("go\n")
        p.stdin.flush()
        pid = int(p.stdout.readline())
        time.sleep(rnd.uniform(0.0, max_delay))
        os.kill(pid, signal.SIGKILL)
        reaped = p.stdout.readline().split()
        assert reaped[0] == "reaped" and os.WIFSIGNALED(int(reaped[1])), reaped  # killed while writing
        outcome = check()
        counts[outcome] = counts.get(outcome, 0) + 1
    p.stdin.close()
    p.wait(timeout=30)
    return counts


def _leftovers(folder: Path) -> int:
    return sum(1 for f in folder.iterdir() if f.name.startswith("."))


@pytest.fixture
def rnd():
    return random.Random(16)


def test_killed_dicom_series_export_leaves_the_old_or_the_new_series(tmp_path, rnd):
    from ctstudio.imaging.phantom import head_phantom
    from ctstudio.io import read_volume

    out = tmp_path / "series"
    refs = [head_phantom((4, 16, 16), noise_sd=10.0, seed=v) for v in (0, 1)]
    p = _start("dicom", out, tmp_path)

    def check():
        files = sorted(out.iterdir())
        assert len(files) == 4, [f.name for f in files]  # never a partial series under the final name
        arr = read_volume(out).array
        same = [np.array_equal(arr[::-1], r.array) or np.array_equal(arr, r.array) for r in refs]
        assert any(same)
        return "new" if same[1] else "old"

    counts = _kill_loop(p, rnd, check, 2.5 * p.write_seconds)
    print(f"dicom export: {KILLS} kills -> {counts}, leftover temporary folders {_leftovers(tmp_path)}")
    assert sum(counts.values()) == KILLS


def test_killed_model_bundle_write_leaves_the_old_or_the_new_model(tmp_path, rnd):
    import torch

    from ctstudio import checkpoints

    out = tmp_path / "models" / "m.safetensors"
    out.parent.mkdir()
    p = _start("model", out, tmp_path)

    def check():
        meta, tensors = checkpoints.load_model(out)  # new weights beside the old JSON: the old weights (.prev)
        v = int(meta["card"]["summary"].split()[-1])
        torch.manual_seed(v)
        from ctstudio.models.icnet import ICNet, ICNetConfig

        ref = ICNet(ICNetConfig.tiny()).state_dict()
        for k, t in ref.items():
            assert torch.equal(tensors[f"net.{k}"], t), k
        return f"version {v}"

    counts = _kill_loop(p, rnd, check, 2.5 * p.write_seconds)
    print(f"model bundle: {KILLS} kills -> {counts}, leftover temporary files {_leftovers(out.parent)}")
    assert sum(counts.values()) == KILLS


def test_killed_training_checkpoint_write_leaves_a_complete_checkpoint(tmp_path, rnd):
    from ctstudio import checkpoints

    out = tmp_path / "run"
    p = _start("checkpoint", out, tmp_path)
    base = out / "checkpoint" / "state"

    def check():
        meta = json.loads((out / "checkpoint" / "state.json").read_text())
        tensors = checkpoints.load_tensors(base)
        v = meta["step"] - 100
        assert v in (0, 1)
        bias = [k for k in tensors if k.startswith("m_net.") and k.endswith("bias")]
        assert bias
        return f"version {v}"

    counts = _kill_loop(p, rnd, check, 2.5 * p.write_seconds)
    print(f"training checkpoint: {KILLS} kills -> {counts}, leftovers {_leftovers(base.parent)}")
    assert sum(counts.values()) == KILLS


@pytest.mark.slow
def test_killed_conversion_leaves_the_old_or_the_new_output(tmp_path, rnd):
    from ctstudio.io import read_volume

    out = tmp_path / "out.nii.gz"
    p = _start("convert", out, tmp_path)
    ref0 = read_volume(out).array  # the launcher's last write was version 0
    refs = {"old": ref0}

    def check():
        arr = read_volume(out).array  # checks the gzip stream to its end and its CRC
        for name, r in refs.items():
            if np.array_equal(arr, r):
                return name
        assert "new" not in refs, "a third, different output"
        refs["new"] = arr
        return "new"

    counts = _kill_loop(p, rnd, check, 2.5 * p.write_seconds)
    print(f"conversion: {KILLS} kills -> {counts}, leftover temporary files {_leftovers(tmp_path)}")
    assert sum(counts.values()) == KILLS


# -- permissions ---------------------------------------------------------------------------------------------
@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_atomic_files_and_folders_get_the_umask_permissions(tmp_path, umask):
    f = atomic.atomic_write_text(tmp_path / "a.txt", "x")
    assert _mode(f) == 0o666 & ~umask  # 0644 under the usual 022, not mkstemp's 0600
    with atomic.atomic_dir(tmp_path / "series") as d:
        (d / "one").write_text("1")
    assert _mode(tmp_path / "series") == 0o777 & ~umask
    with atomic.atomic_dir(tmp_path / "series", overwrite=True) as d:
        (d / "two").write_text("2")
    assert [c.name for c in (tmp_path / "series").iterdir()] == ["two"]
    assert _mode(tmp_path / "series") == 0o777 & ~umask
    assert [c.name for c in tmp_path.iterdir() if c.name.startswith(".")] == []


def test_volumes_and_models_are_written_with_the_umask_permissions(tmp_path, umask):
    import torch

    from ctstudio import checkpoints
    from ctstudio.imaging.phantom import head_phantom
    from ctstudio.io import write_volume
    from ctstudio.models.icnet import ICNet, ICNetConfig

    vol = head_phantom((3, 8, 8))
    nii = write_volume(vol, tmp_path / "v.nii.gz")
    series = write_volume(vol, tmp_path / "dcm", format="dicom")
    torch.manual_seed(0)
    st = checkpoints.save_model(tmp_path, "m", "icnet", {"net": ICNet(ICNetConfig.tiny())}, {})
    for f in (nii, st, tmp_path / "m.json", *series.iterdir()):
        assert _mode(f) == 0o666 & ~umask, f
    assert _mode(series) == 0o777 & ~umask
