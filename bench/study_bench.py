"""Reader study: time from an answer to the next pair on screen, with prefetch vs on demand.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/study_bench.py [--pairs 20] [--size 512] \
        [--shape 64 384 384] [--read-ms 300]

Writes a pair study of phantom NIfTI volumes (4 real-labelled, 4 synthetic-labelled; nothing is model
output) and drives the real Study tab (offscreen Qt): each answer goes through the pair screen,
is committed to the SQLite store (WAL, synchronous=FULL), and the next pair is rendered and
repainted. The figure is the time from the answer to the end of that repaint (the goal: <= 50 ms).

* ctstudio: the session prefetches the next pair's images in a background thread while the
  reader looks at the current one (``--read-ms`` simulated reading time per pair; real readers
  take seconds);
* baseline: the same screens with prefetch and the image cache turned off, so each answer reads
  both volumes from disk and resamples them on demand.

Also prints the commit time of one answer alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def run_reader(app, tab, spec, db, code, pairs, read_ms, prefetch: bool) -> list[float]:
    reg = tab.registration
    reg.spec_edit.setText(str(spec))
    reg.db_edit.setText(str(db))
    reg.reader_edit.setText(code)
    assert tab.start(), reg.message.text()
    if not prefetch:
        tab.session._pool.shutdown(wait=True, cancel_futures=True)
        tab.session._pool = None
        tab.session._cache_size = 0
        tab.session._cache.clear()
        tab.session._futures.clear()
    tab.begin()
    tab.transitions_ms = []
    side = "left"
    while tab.session is not None and tab.session.current is not None:
        t_end = time.perf_counter() + read_ms / 1000.0
        while time.perf_counter() < t_end:  # the reader looks; the event loop runs
            app.processEvents()
            time.sleep(0.005)
        tab.answer_pair(side)
        side = "right" if side == "left" else "left"
    out = list(tab.transitions_ms)
    assert len(out) == pairs - 1, (len(out), pairs)
    tab.new_reader()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--size", type=int, default=512, help="display grid (pixels)")
    ap.add_argument("--shape", type=int, nargs=3, default=(64, 384, 384), help="case volume z y x")
    ap.add_argument("--read-ms", type=float, default=300.0, help="simulated reading time per pair")
    args = ap.parse_args()

    from PySide6.QtWidgets import QApplication

    from ctstudio.app.tabs.study import Tab
    from ctstudio.imaging.phantom import head_phantom
    from ctstudio.io import write_volume
    from ctstudio.studies.store import Store

    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="ctstudio-study-bench-"))
    for cls, base in (("real", 0), ("synthetic", 100)):
        (tmp / cls).mkdir()
        for i in range(4):
            write_volume(head_phantom(tuple(args.shape), spacing=(0.6, 0.6, 2.5), noise_sd=12.0, seed=base + i),
                         tmp / cls / f"c{i}.nii.gz")
    spec = tmp / "study.toml"
    spec.write_text(f"""
[study]
name = "bench"
kind = "pair"
seed = 1
pairs_per_reader = {args.pairs}
[pools]
real = ["real/*.nii.gz"]
synthetic = ["synthetic/*.nii.gz"]
[display]
window = "brain"
size = {args.size}
""")
    db = tmp / "bench.db"
    tab = Tab(None)
    tab.resize(1400, 800)
    tab.show()
    app.processEvents()
    # warm-up reader (imports, first paint)
    run_reader(app, tab, spec, db, "warmup", args.pairs, 50, True)
    base = run_reader(app, tab, spec, db, "baseline", args.pairs, args.read_ms, prefetch=False)
    ours = run_reader(app, tab, spec, db, "prefetch", args.pairs, args.read_ms, prefetch=True)

    st = Store(db)
    t_commit = []
    from ctstudio.studies.session import ReaderSession
    from ctstudio.studies.spec import load_spec

    s = ReaderSession.open(st, load_spec(spec), "commit-only", prefetch=False)
    s.begin()
    while s.current is not None:
        t0 = time.perf_counter()
        s.answer(choice="left")
        t_commit.append((time.perf_counter() - t0) * 1000)

    def row(name, xs):
        xs = sorted(xs)
        p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
        return name, statistics.median(xs), p90, max(xs)

    rows = [row("ctstudio (prefetch)", ours), row("baseline (on demand)", base)]
    print(f"\nnext pair on screen after an answer: {args.pairs - 1} transitions each, cases "
          f"{'x'.join(map(str, args.shape))} int16 NIfTI, display {args.size}x{args.size}, "
          f"reading time {args.read_ms:g} ms, {os.cpu_count()} CPUs")
    print(f"{'':<24}{'median ms':>10}{'p90 ms':>10}{'max ms':>10}")
    for name, med, p90, mx in rows:
        print(f"{name:<24}{med:>10.1f}{p90:>10.1f}{mx:>10.1f}")
    print(f"{'ratio ctstudio/baseline':<24}{rows[0][1] / rows[1][1]:>10.3f}{rows[0][2] / rows[1][2]:>10.3f}"
          f"{rows[0][3] / rows[1][3]:>10.3f}")
    print(f"commit of one answer alone (WAL, synchronous=FULL): median {statistics.median(t_commit):.2f} ms, "
          f"max {max(t_commit):.2f} ms")
    print(f"goal <= 50 ms: {'met' if rows[0][1] <= 50 else 'NOT met'} at the median, "
          f"{'met' if rows[0][2] <= 50 else 'NOT met'} at p90")
    tab.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
