"""Viewer benchmark: crosshair move -> three views repainted, and W/L change -> repainted.

ctstudio's TriPlanar (int16 slices straight to pyqtgraph with explicit levels; only views whose
slice changed are re-sliced; a W/L change only sets levels) against a naive tri-planar viewer
measured in the same run on the same volume and window sizes: every event re-slices all three
planes, converts them to float32 and lets pyqtgraph auto-level (for W/L: windows in float with
numpy, then auto-levels).

A "repaint" is a synchronous ``viewport().repaint()`` of each of the three views (offscreen Qt), so
the time includes slicing, the HU -> grey conversion and Qt painting. Wall time and the UI
thread's CPU time are both reported: on a shared, loaded machine the CPU time is what the event
costs, the wall time adds the wait for a free core.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/viewer_bench.py [--shape 300 512 512] [--events 60]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402


def _stats(times: list[float]) -> tuple[float, float]:
    a = np.asarray(times) * 1000.0
    return float(np.median(a)), float(np.percentile(a, 95))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=(300, 512, 512), metavar=("Z", "Y", "X"))
    ap.add_argument("--events", type=int, default=60)
    ap.add_argument("--size", type=int, nargs=2, default=(1400, 1000), metavar=("W", "H"))
    args = ap.parse_args()

    import pyqtgraph as pg
    from PySide6.QtCore import QRectF
    from PySide6.QtWidgets import QApplication, QGridLayout, QWidget

    from ctstudio.app.widgets.triplanar import TriPlanar
    from ctstudio.imaging.phantom import head_phantom_hu
    from ctstudio.volume import Volume
    from ctstudio.imaging.window import PRESETS, Window

    app = QApplication.instance() or QApplication([])
    t0 = time.perf_counter()
    z, y, x = args.shape
    half = head_phantom_hu(((z + 1) // 2, (y + 1) // 2, (x + 1) // 2))  # built at half size, then upsampled
    arr = half.repeat(2, 0).repeat(2, 1).repeat(2, 2)[:z, :y, :x]
    arr = arr + np.random.default_rng(0).normal(0, 15, arr.shape).astype(np.int16)  # CT-like noise
    vol = Volume(arr.astype(np.int16), spacing=(0.5, 0.5, 0.6))
    print(f"volume {vol.shape} int16 ({vol.array.nbytes / 2**20:.0f} MiB), built in {time.perf_counter() - t0:.1f} s")
    rng = np.random.default_rng(0)
    nz, ny, nx = vol.shape
    moves = [(int(rng.integers(nz)), int(rng.integers(ny)), int(rng.integers(nx))) for _ in range(args.events)]
    clicks = [(moves[0][0], int(rng.integers(ny)), int(rng.integers(nx))) for _ in range(args.events)]
    windows = [Window(float(rng.integers(-200, 200)), float(rng.integers(80, 2000))) for _ in range(args.events)]

    # -- ctstudio viewer and the naive baseline, side by side; events interleaved so that the load
    # of this shared machine hits both alike -------------------------------------------------------
    tri = TriPlanar()
    tri.resize(*args.size)
    tri.show()
    tri.set_volume(vol, window=PRESETS["brain"])
    views = list(tri.views.values())
    d = tri.display

    win = QWidget()
    grid = QGridLayout(win)
    grid.setContentsMargins(0, 0, 0, 0)
    items, gviews = [], []
    for r, c_ in ((0, 0), (0, 1), (1, 0)):
        gv = pg.GraphicsLayoutWidget()
        vb = gv.addViewBox(lockAspect=True, invertY=True)
        img = pg.ImageItem(axisOrder="row-major")
        vb.addItem(img)
        grid.addWidget(gv, r, c_)
        items.append(img)
        gviews.append(gv)
    grid.addWidget(QWidget(), 1, 1)
    win.resize(*args.size)
    win.show()
    app.processEvents()
    arr = d.array

    def naive_slices(cur):
        s, p, l = cur
        return (arr[s], arr[:, p, :][::-1], arr[:, :, l][::-1])

    naive_state = {"cur": moves[0]}

    def naive_move(cur, first=False) -> None:
        naive_state["cur"] = cur
        for img, sl, pl in zip(items, naive_slices(cur), ("axial", "coronal", "sagittal")):
            img.setImage(np.ascontiguousarray(sl).astype(np.float32), autoLevels=True)
            if first:
                rmm, cmm = d.pixel_mm(pl)
                img.setRect(QRectF(0, 0, sl.shape[1] * cmm, sl.shape[0] * rmm))

    def naive_wl(w) -> None:
        for img, sl in zip(items, naive_slices(naive_state["cur"])):
            f = (np.ascontiguousarray(sl).astype(np.float32) - np.float32(w.level - w.width / 2)) / np.float32(w.width)
            img.setImage(np.clip(f, 0, 1), autoLevels=True)

    naive_move(moves[0], first=True)
    app.processEvents()

    def timed(apply, event, vs) -> tuple[float, float]:
        t, c = time.perf_counter(), time.thread_time()
        apply(event)
        for v in vs:
            v.viewport().repaint()  # synchronous paint of each view
        return time.perf_counter() - t, time.thread_time() - c

    def run(events, ct_apply, nv_apply):
        ct, nv = [], []
        for e in events:
            ct.append(timed(ct_apply, e, views))
            nv.append(timed(nv_apply, e, gviews))
        return ct, nv

    run(moves[:5], tri.state.set_cursor, naive_move)  # warm-up
    ct_move, nv_move = run(moves, tri.state.set_cursor, naive_move)
    ct_click, nv_click = run(clicks, tri.state.set_cursor, naive_move)
    ct_wl, nv_wl = run(windows, tri.state.set_window, naive_wl)
    # the views really show what the state says
    c = tri.state.cursor
    for v in views:
        assert v.slice_index == c[{"axial": 0, "coronal": 1, "sagittal": 2}[v.plane]]
        assert v.levels == (windows[-1].lower, windows[-1].upper)
    if os.environ.get("VIEWER_BENCH_GRAB"):  # look at what both painted
        tri.grab().save(os.environ["VIEWER_BENCH_GRAB"] + "_ctstudio.png")
        win.grab().save(os.environ["VIEWER_BENCH_GRAB"] + "_naive.png")
    tri.close()
    win.close()

    rows = [("crosshair move (all 3 slices change)", ct_move, nv_move),
            ("click in axial (2 slices change)", ct_click, nv_click),
            ("W/L change", ct_wl, nv_wl)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{args.events} events per row, {args.size[0]}x{args.size[1]} px window, offscreen Qt, "
          f"load average {load:.1f} on {os.cpu_count()} CPUs; time until all three views are repainted.")
    print("wall = elapsed time; cpu = CPU time of the UI thread (what the event costs, without the wait "
          "for a CPU that other processes hold)")
    print(f"{'event':38s} {'ctstudio wall':>14s} {'(p95)':>8s} {'cpu':>8s} | {'naive wall':>11s} {'(p95)':>8s} "
          f"{'cpu':>8s} | {'speed-up wall':>13s} {'cpu':>6s}")
    for name, ct, nv in rows:
        cw, cc = [x[0] for x in ct], [x[1] for x in ct]
        nw, nc = [x[0] for x in nv], [x[1] for x in nv]
        (cm, cp), (nm, npct) = _stats(cw), _stats(nw)
        ccm, ncm = _stats(cc)[0], _stats(nc)[0]
        print(f"{name:38s} {cm:11.2f} ms {cp:5.1f} ms {ccm:5.2f} ms | {nm:8.2f} ms {npct:5.1f} ms {ncm:5.2f} ms | "
              f"{nm / cm:12.2f}x {ncm / ccm:5.2f}x")
    cm = _stats([x[0] for x in ct_move])[0]
    cc = _stats([x[1] for x in ct_move])[0]
    print(f"\ngoal <= 16 ms per crosshair move: wall {cm:.2f} ms ({'met' if cm <= 16 else 'NOT met'}), "
          f"UI-thread CPU {cc:.2f} ms ({'met' if cc <= 16 else 'NOT met'}; {1000 / cc:.0f} moves/s if it had a core)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
