"""Distributed training on this machine: 1 process against 2 gloo processes (torchrun + DDP) on the same global batch.

Both runs are ``ctstudio train KIND --events jsonl`` on the bundled sample volume with the same config, except
that the single process takes the whole global batch and each of the two processes half of it
(``batch_size`` is per process). Rounds alternate (1, 2, 1, 2, ...) so machine load hits both alike. The rate is
taken from the run's own step events: steps between the first and the last logged step over the time between them
(start-up, data loading and the final export are left out); samples/s is that times the global batch. The load
average (1 min) before and after each run is printed beside it: on a shared 2-core CPU two processes compete
with everyone else's work, and gloo's all-reduce goes through local sockets.

usage: .venv/bin/python bench/ddp_bench.py [--kind score] [--global-batch 8] [--image-size 32] [--steps 60]
       [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "resources" / "sample" / "headsq_hu.nii.gz"


def one_run(kind: str, config: dict, processes: int, steps: int, work: Path) -> dict:
    cfg = work / f"config-{processes}.json"
    cfg.write_text(json.dumps(config))
    out = work / f"run-{processes}"
    argv = [sys.executable, "-m", "ctstudio.cli", "train", kind, "--data", str(SAMPLE), "--config", str(cfg),
            "--out", str(out), "--device", "cpu", "--events", "jsonl", "--steps", str(steps), "--overwrite",
            "--checkpoint-every", "0"]
    if processes > 1:
        argv += ["--processes", str(processes)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    load0 = os.getloadavg()[0]
    r = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=3600)
    load1 = os.getloadavg()[0]
    if r.returncode != 0:
        raise SystemExit(f"{processes}-process run failed:\n{r.stderr[-3000:]}")
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    stepped = [e for e in events if e["stage"] == "step"]
    first, last = stepped[0], stepped[-1]
    rate = (last["done"] - first["done"]) / (last["seconds"] - first["seconds"])
    start = events[0]
    return {"steps_per_s": rate, "global_batch": start.get("global_batch"), "processes": start.get("processes", 1),
            "load": (load0, load1), "final_loss": last["loss"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", default="score", choices=["score", "icnet"])
    ap.add_argument("--global-batch", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    if a.global_batch % 2:
        raise SystemExit("--global-batch must be even (two processes share it)")
    base = {"base": "tiny", "image_size": a.image_size}
    results: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for _ in range(a.rounds):
            for n in (1, 2):
                cfg = {**base, "batch_size": a.global_batch // n}
                res = one_run(a.kind, cfg, n, a.steps, work)
                assert res["global_batch"] == a.global_batch, res
                results[n].append(res)
                print(f"  {n} process(es): {res['steps_per_s']:.2f} steps/s, load {res['load'][0]:.1f} -> "
                      f"{res['load'][1]:.1f}", file=sys.stderr)
    med = {n: statistics.median(r["steps_per_s"] for r in rs) for n, rs in results.items()}
    loads = [x for rs in results.values() for r in rs for x in r["load"]]
    print(f"ddp_bench: {a.kind} tiny at {a.image_size}x{a.image_size}, global batch {a.global_batch}, {a.steps} steps, "
          f"{a.rounds} rounds, {os.cpu_count()} CPUs, load average {min(loads):.1f}-{max(loads):.1f}")
    print(f"{'processes':>9} | {'steps/s (median)':>16} | {'samples/s':>9} | {'ratio to 1 process':>18} | rounds (steps/s)")
    for n in (1, 2):
        rounds = ", ".join(f"{r['steps_per_s']:.2f}" for r in results[n])
        print(f"{n:>9} | {med[n]:>16.2f} | {med[n] * a.global_batch:>9.1f} | {med[n] / med[1]:>17.2f}x | {rounds}")


if __name__ == "__main__":
    main()
