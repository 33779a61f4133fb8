"""Window benchmarks: start-up time with and without the Generate tab, and UI responsiveness during generation.

* start-up: a fresh process constructs and shows the main window (offscreen) on the sample volume; measured
  with every tab, and with the Generate tab left out (the baseline), median of N runs each; also whether torch
  was imported (it must not be: torch is loaded by workers when the Generate tab is first shown);
* responsiveness: a QTimer ticking every 20 ms while the Generate tab runs the bundled demo on the sample
  (seed slice 20); the gaps between ticks (p50, p95, max) against the same timer with the window idle.

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python bench/window_bench.py [--runs 3] [--slices 4] [--steps 25]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "resources", "sample", "headsq_hu.nii.gz")

STARTUP = r"""
import json, os, sys, time
t0 = time.perf_counter()
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtWidgets import QApplication
app = QApplication([])
import ctstudio.app.main_window as mwmod
if sys.argv[1] == "without":
    real = mwmod.discover_tabs
    mwmod.discover_tabs = lambda: [t for t in real() if t[1] != "Generate"]
    sys.modules["ctstudio.app.tabs.generate"] = None  # nothing may import it
from ctstudio.io import read_volume
mw = mwmod.MainWindow(mwmod.make_settings(sys.argv[2]))
mw.show()
mw.set_volume(read_volume(sys.argv[3]), "sample")
app.processEvents()
print(json.dumps({"seconds": time.perf_counter() - t0, "torch": "torch" in sys.modules,
                  "generate": mw.tab("Generate") is not None}))
"""


def startup(variant: str, runs: int) -> dict:
    times, torch, gen = [], set(), set()
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.run([sys.executable, "-c", STARTUP, variant, os.path.join(d, "s.ini"), SAMPLE],
                                 capture_output=True, text=True, timeout=300, cwd=ROOT)
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        times.append(rec["seconds"])
        torch.add(rec["torch"])
        gen.add(rec["generate"])
    return {"median": statistics.median(times), "min": min(times), "torch": torch, "generate": gen}


def gaps(ticks: list[float]) -> dict:
    import numpy as np

    g = np.diff(ticks) * 1000
    return {"p50": float(np.percentile(g, 50)), "p95": float(np.percentile(g, 95)), "max": float(g.max()),
            "n": len(ticks)}


def responsiveness(slices: int, steps: int) -> tuple[dict, dict, float]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from ctstudio.app.main_window import MainWindow, make_settings
    from ctstudio.io import read_volume

    d = tempfile.mkdtemp()
    mw = MainWindow(make_settings(os.path.join(d, "s.ini")))
    mw.resize(1400, 900)
    mw.show()
    mw.set_volume(read_volume(SAMPLE), "headsq_hu.nii.gz", SAMPLE)
    tab = mw.tab("Generate")
    mw.tabs.setCurrentWidget(tab)
    t_end = time.perf_counter() + 120
    while not tab.samplers and time.perf_counter() < t_end:
        app.processEvents()
        time.sleep(0.01)
    tab.models.select("score-k2-demo")
    tab.set_sampler("heun", steps)
    tab.seed_slice.setValue(20)
    tab.n_slices.setValue(slices)

    def measure(seconds: float | None) -> tuple[list[float], float]:
        ticks: list[float] = []
        timer = QTimer()
        timer.setInterval(20)
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        timer.start()
        t0 = time.perf_counter()
        if seconds is None:
            tab.start()
            while tab.running:
                app.processEvents()
                time.sleep(0.001)
        else:
            while time.perf_counter() - t0 < seconds:
                app.processEvents()
                time.sleep(0.001)
        timer.stop()
        return ticks, time.perf_counter() - t0

    idle, _ = measure(3.0)
    running, span = measure(None)
    per_slice = span / max(1, tab.grow.n_generated)
    mw.close()
    return gaps(idle), gaps(running), per_slice


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--slices", type=int, default=4)
    ap.add_argument("--steps", type=int, default=25)
    args = ap.parse_args()
    with_gen = startup("with", args.runs)
    without = startup("without", args.runs)
    idle, running, per_slice = responsiveness(args.slices, args.steps)
    load = os.getloadavg()[0]
    print(f"window bench (load {load:.1f}, {os.cpu_count()} CPUs)")
    print(f"{'measure':58s} {'ctstudio':>18s} {'baseline':>18s} {'ratio':>7s}")
    print(f"{'start-up, window + sample shown (median of %d)' % args.runs:58s} "
          f"{with_gen['median']:>16.2f} s {without['median']:>16.2f} s {with_gen['median'] / without['median']:>6.2f}x")
    print(f"{'  (baseline: Generate tab left out); torch imported':58s} {str(with_gen['torch']):>18s} "
          f"{str(without['torch']):>18s}")
    print(f"{'20 ms QTimer gap p95 during generation (baseline: idle)':58s} {running['p95']:>15.1f} ms "
          f"{idle['p95']:>15.1f} ms {running['p95'] / idle['p95']:>6.2f}x")
    print(f"{'20 ms QTimer gap p50 / max during generation':58s} {running['p50']:>8.1f} / {running['max']:>6.1f} ms "
          f"{idle['p50']:>8.1f} / {idle['max']:>6.1f} ms")
    print(f"{'  %d demo slices, heun %d steps, %.2f s/slice, %d ticks' % (args.slices, args.steps, per_slice, running['n']):58s}")


if __name__ == "__main__":
    main()
