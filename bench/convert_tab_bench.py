"""Convert tab benchmark: conversion speed in the window against the command line, same input, same model.

    .venv/bin/python bench/convert_tab_bench.py [--model ggcl-phantom-ub-ya] [--slices 8] [--crop 512]
                                                [--repeats 3] [--threads 1] [--cgan]

Runs headless (``QT_QPA_PLATFORM=offscreen``, set here). The input is the real Philips head phantom UB series
(``../shared/data``; the first ``--slices`` slices, a central ``--crop`` square), converted to YA with the
bundled kernel model (``--cgan``: the chest CT through the demo cGAN, 32³ blocks). Both sides are measured in
this process with the same torch thread count and the model already in the loader's cache:

* **tab**: the Convert tab's Run button to the converted volume on screen (``Tab.run()`` until the worker
  has finished: the job on the thread pool, its events through Qt signals, the live outline of the finished
  part, the compare view set to source | converted | difference);
* **CLI**: ``ctstudio convert IN --model M --target YA -o OUT --quiet`` through ``ctstudio.cli.main`` (reading
  the input file, the conversion, writing the output file);
* beside it, for reference only, the CLI as a new process (``python -m ctstudio.cli``: adds interpreter,
  torch import and model load).

Runs alternate (tab, CLI, tab, CLI, ...) after one warm-up of each; the table gives the medians and the
ratio tab / CLI (the issue's goal: at most 1.10).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("CTSTUDIO_SHARED_DATA", ROOT.parent / "shared" / "data"))


def make_input(args, folder: Path) -> tuple[Path, str]:
    """The benchmark's input volume written to ``folder``; returns its path and the model to use."""
    from ctstudio.io import read_volume, write_volume

    if args.cgan:
        src, model = DATA / "chest-ct-philips-bigbore" / "chest_ct_slices038-101.nii.gz", "cgan-chest-denoise"
    else:
        src, model = DATA / "head-phantom-philips-2kernels" / "phantom_UB-std_slices24-55.nii.gz", args.model
    v = read_volume(src)
    n, h, w = v.shape
    c = min(args.crop, h, w)
    y0, x0 = (h - c) // 2, (w - c) // 2
    crop = v.with_array(np.ascontiguousarray(v.array[:args.slices, y0:y0 + c, x0:x0 + c]), step="bench crop")
    path = folder / "input.nii.gz"
    write_volume(crop, path)
    return path, model


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="ggcl-phantom-ub-ya")
    p.add_argument("--slices", type=int, default=8)
    p.add_argument("--crop", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    p.add_argument("--cgan", action="store_true", help="the demo cGAN on the chest CT instead")
    p.add_argument("--no-subprocess", action="store_true", help="skip the new-process CLI row")
    args = p.parse_args()
    if args.cgan:
        args.slices = max(args.slices, 32)

    import torch
    from PySide6.QtCore import QSettings
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    torch.set_num_threads(args.threads)
    app = QApplication.instance() or QApplication([])
    from ctstudio.app.main_window import MainWindow
    from ctstudio.cli import main as cli_main
    from ctstudio.io import read_volume
    from ctstudio.pipelines.models import load_model

    tmp = Path(tempfile.mkdtemp(prefix="ctstudio-convert-tab-bench-"))
    inp, model = make_input(args, tmp)
    vol = read_volume(inp)
    load_model(model, device="cpu")  # into the cache: neither side pays for loading
    mw = MainWindow(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    mw.resize(1400, 900)
    mw.show()
    QTest.qWait(200)
    mw.set_volume(vol, "bench input", str(inp))
    tab = mw.tab("Convert")
    mw.tabs.setCurrentWidget(tab)
    if not tab.models.select(model):
        raise SystemExit(f"model {model} not in the models panel")
    QTest.qWait(200)
    if not args.cgan:
        tab.target_combo.setCurrentText("YA")
    tab.models.device = lambda: "cpu"  # the same device as the CLI's --device cpu

    def run_tab() -> float:
        t0 = time.perf_counter()
        worker = tab.run()
        if worker is None:
            raise SystemExit("the tab refused to run")
        while tab.worker is not None:
            app.processEvents()
            time.sleep(0.002)
        app.processEvents()
        dt = time.perf_counter() - t0
        if tab.result is None:
            raise SystemExit("the tab's run failed: " + tab.progress_label.text())
        return dt

    cli_args = ["convert", str(inp), "--model", model, "-o", "", "--device", "cpu", "--quiet", "--overwrite"]
    if not args.cgan:
        cli_args[4:4] = ["--target", "YA"]
    out_i = cli_args.index("-o") + 1
    counter = [0]

    def run_cli() -> float:
        counter[0] += 1
        cli_args[out_i] = str(tmp / f"cli_{counter[0]}.nii.gz")
        t0 = time.perf_counter()
        rc = cli_main(list(cli_args))
        dt = time.perf_counter() - t0
        if rc != 0:
            raise SystemExit(f"ctstudio convert exited {rc}")
        return dt

    run_tab(), run_cli()  # warm-up
    tab_t, cli_t = [], []
    for _ in range(args.repeats):
        tab_t.append(run_tab())
        cli_t.append(run_cli())
    sub = None
    if not args.no_subprocess:
        sargs = list(cli_args)
        sargs[out_i] = str(tmp / "cli_subprocess.nii.gz")
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ctstudio.cli", *sargs], check=True, env=env, cwd=ROOT)
        sub = time.perf_counter() - t0
    out_tab = tab.result.volume.array
    out_cli = read_volume(tmp / f"cli_{counter[0]}.nii.gz").array
    same = np.array_equal(out_tab, out_cli)
    mt, mc = statistics.median(tab_t), statistics.median(cli_t)
    unit = "blocks" if args.cgan else "slices"
    n = vol.shape[0]
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    print(f"\ninput {'x'.join(map(str, vol.shape))} ({inp.name}), model {model}, torch threads {args.threads}, "
          f"{args.repeats} runs each, load {load:.1f}")
    print(f"{'side':<34} {'median s':>9} {'runs s':>28} {'slices/s':>9}")
    print(f"{'Convert tab (Run -> result shown)':<34} {mt:9.2f} {' '.join(f'{t:.2f}' for t in tab_t):>28} {n / mt:9.2f}")
    print(f"{'CLI in-process (read+convert+write)':<34} {mc:9.2f} {' '.join(f'{t:.2f}' for t in cli_t):>28} {n / mc:9.2f}")
    if sub is not None:
        print(f"{'CLI new process (for reference)':<34} {sub:9.2f} {'':>28} {n / sub:9.2f}")
    print(f"ratio tab / CLI: {mt / mc:.3f}x (goal <= 1.10)   same output voxels: {same}   ({unit})")
    mw.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
