"""Per-call speed of the score network: eager fp32 against inference mode, channels_last, torch.compile and
thread settings, in one run, on the same model and inputs.

Sampling: one denoiser call (batch 1, K = 2) of a random-weight model of the demo's shape
(``ScoreUNetConfig.demo()``) at 64x64, 256x256 and 512x512. Training: one step (dsm_loss, backward, Adam) of the
demo-shaped model on random 64x64 batches of 8. Every variant is timed in interleaved rounds against the eager
fp32 baseline (same process, same inputs, one round of each in turn), so machine load hits them alike; the
table gives the median time per call, the ratio to the baseline, and the largest difference of the variant's
output from the eager output on the same input (the loss after the first step for training). The load
average is printed with the table.

usage: .venv/bin/python bench/speed_bench.py [--sizes 64,256,512] [--rounds 5] [--threads 1,2] [--no-compile]
       [--skip-train]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np
import torch


def random_model(size: int, seed: int = 0):
    from ctstudio.models.score_unet import ScoreModel, ScoreUNetConfig

    torch.manual_seed(seed)
    m = ScoreModel(dataclasses.replace(ScoreUNetConfig.demo(2), image_size=size)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.05)
    return m


def _median_rounds(fns: dict, calls: int, rounds: int) -> dict:
    """Median seconds per call of each function, timed in interleaved rounds (one warm-up call each first)."""
    times = {k: [] for k in fns}
    for f in fns.values():
        f()
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(calls):
                f()
            times[k].append((time.perf_counter() - t) / calls)
    return {k: float(np.median(v)) for k, v in times.items()}


def sampling_variants(size: int, threads: list[int], use_compile: bool):
    """{label: (zero-argument call, output of one call)} for one image size; the first is the baseline."""
    from ctstudio.models.score_unet import compile_model

    m = random_model(size)
    x = torch.randn(1, 2, size, size, generator=torch.Generator().manual_seed(1)) * 0.7
    sigma = torch.tensor([0.8])
    default_threads = torch.get_num_threads()

    def with_threads(n, f):
        def run():
            torch.set_num_threads(n)
            try:
                return f()
            finally:
                torch.set_num_threads(default_threads)
        return run

    def no_grad_call(model):
        def run():
            with torch.no_grad():
                return model(x, sigma)
        return run

    def inference_call(model):
        def run():
            with torch.inference_mode():
                return model(x, sigma)
        return run

    variants = {f"eager fp32, no_grad ({default_threads} thr)": no_grad_call(m),
                "inference_mode": inference_call(m)}
    for n in threads:
        if n != default_threads:
            variants[f"eager fp32, {n} thread(s)"] = with_threads(n, no_grad_call(m))
    cl = random_model(size)
    cl.channels_last = True
    cl.to(memory_format=torch.channels_last)
    variants["channels_last"] = no_grad_call(cl)
    if use_compile:
        t = time.perf_counter()
        compiled, ok = compile_model(m, (x, sigma))
        if ok:
            print(f"  compiled at {size}x{size} in {time.perf_counter() - t:.0f} s", flush=True)
            variants["torch.compile (inductor)"] = no_grad_call(compiled)
            variants["torch.compile + inference_mode"] = inference_call(compiled)
    return variants


def train_variants(threads: list[int], use_compile: bool, batch: int = 8):
    """{label: step()} for one training step of the demo-shaped model on a fixed random batch; step() returns
    the loss. Each variant starts from the same weights; the first is the plain fp32 eager loop."""
    from ctstudio.diffusion.losses import dsm_loss
    from ctstudio.diffusion.sde import VESDE
    from ctstudio.models.score_unet import compile_model

    sde = VESDE(0.001, 100.0)
    data = torch.rand(batch, 2, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    default_threads = torch.get_num_threads()

    def make(cl=False, comp=False, n_threads=None):
        m = random_model(64).train()
        m.channels_last = cl
        if cl:
            m.to(memory_format=torch.channels_last)
        net = m
        if comp:
            net, ok = compile_model(m, (data, torch.full((batch,), 0.5)))
            if not ok:
                return None
        opt = torch.optim.Adam(m.parameters(), lr=1e-4)
        g = torch.Generator().manual_seed(3)

        def step():
            if n_threads:
                torch.set_num_threads(n_threads)
            try:
                loss = dsm_loss(net, data, sde, generator=g, t_sampling="lognormal", sigma_data=(0.5, 0.05),
                                cond_prob=0.9, cond_noise=0.01)
                opt.zero_grad()
                loss.backward()
                opt.step()
                return loss.detach()
            finally:
                torch.set_num_threads(default_threads)
        return step

    variants = {f"plain fp32 eager loop ({default_threads} thr)": make(), "channels_last": make(cl=True)}
    for n in threads:
        if n != default_threads:
            variants[f"plain loop, {n} thread(s)"] = make(n_threads=n)
    if use_compile:
        t = time.perf_counter()
        step = make(comp=True)
        if step is not None:
            step()  # compiles the backward too
            print(f"  compiled the training step in {time.perf_counter() - t:.0f} s", flush=True)
            variants["torch.compile (inductor)"] = step
    return variants


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64,256,512")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", default="1,2", help="thread counts to compare (the default count is the baseline)")
    ap.add_argument("--base-threads", type=int, default=1, help="torch threads of the baseline (1: the benches' and "
                    "tests' setting on the shared 2-core CPU)")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",") if t]
    torch.set_num_threads(args.base_threads)
    load0 = os.getloadavg()[0]
    rows = []

    def show(new_rows):
        for what, k, sec, ratio, diff in new_rows:
            print(f"  {what:<28}{k:<38}{sec * 1e3:>10.1f}{ratio:>9.2f}x{diff:>12.2e}  load {os.getloadavg()[0]:.1f}",
                  flush=True)
        rows.extend(new_rows)
    for size in [int(s) for s in args.sizes.split(",")]:
        variants = sampling_variants(size, threads, not args.no_compile)
        ref = next(iter(variants.values()))().clone()
        diffs = {k: float((f().float() - ref).abs().max()) for k, f in variants.items()}
        calls = max(1, int(8 * (64 / size) ** 2))
        med = _median_rounds(variants, calls, args.rounds)
        base = next(iter(med.values()))
        show([(f"sample {size}x{size}", k, v, base / v, diffs[k]) for k, v in med.items()])
    if not args.skip_train:
        variants = train_variants(threads, not args.no_compile)
        first = {}
        for k, make_step in variants.items():  # the loss of each variant's next step from equal weights
            first[k] = float(make_step())
        ref = next(iter(first.values()))
        med = _median_rounds(variants, 2, args.rounds)
        base = next(iter(med.values()))
        show([("train step 64x64, batch 8", k, v, base / v, abs(first[k] - ref)) for k, v in med.items()])
    print(f"\nscore network of the demo's shape (random weights), torch {torch.__version__}, "
          f"{os.cpu_count()} CPU(s), default {torch.get_num_threads()} thread(s), load {load0:.1f} -> "
          f"{os.getloadavg()[0]:.1f}, {args.rounds} interleaved rounds, median")
    print(f"{'what':<28}{'variant':<38}{'ms/call':>10}{'speed-up':>10}{'max |diff|':>12}")
    for what, k, sec, ratio, diff in rows:
        print(f"{what:<28}{k:<38}{sec * 1e3:>10.1f}{ratio:>9.2f}x{diff:>12.2e}")


if __name__ == "__main__":
    main()
