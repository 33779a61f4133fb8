"""Sampler benchmark on the bundled demo score model: the paper's PC vs the fast sampler, same seeds.

Prints one table: network calls and seconds per slice, and quality beside them (MAE in HU to the real
slices at the same positions, adjacent-slice mean |dHU| vs the real volume's, soft-tissue CV), plus the
training step's speed vs a plain fp32 eager loop and the bf16 / channels_last variants, all measured in
this run on this machine.

Several sampler seeds (``--rng-seeds``) give each figure as a mean and its run-to-run spread (SD over the
seeds), so "the same quality" can be judged against the noise. DPM-Solver++(2M) runs at the step counts of
``--dpm-steps`` (one network call per step). ``--pc-slices 0`` skips the slow PC-1000 rows (~50 s per slice on a
2-core CPU).

usage: .venv/bin/python bench/sampler_bench.py [--pc-steps 1000] [--fast-steps 25] [--dpm-steps 10,12]
       [--slices 3] [--seeds 20,60] [--rng-seeds 0,1,2] [--pc-slices 3] [--threads 1] [--skip-train]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def soft_tissue_cv(hu: np.ndarray) -> float:
    try:
        from ctstudio.metrics.cv import parenchyma_cv

        return float(parenchyma_cv(hu)["cv"] if isinstance(parenchyma_cv(hu), dict) else parenchyma_cv(hu))
    except Exception:  # the metrics package is optional here
        m = (hu > 0) & (hu < 80)
        return float(hu[m].std() / max(1e-6, abs(hu[m].mean()))) if m.sum() > 20 else float("nan")


def quality(gen: np.ndarray, real: np.ndarray) -> dict:
    g, r = gen.astype(float), real.astype(float)
    return {"mae_hu": float(np.abs(g - r).mean()),
            "adj_dhu": float(np.abs(np.diff(g, axis=0)).mean()) if len(g) > 1 else float("nan"),
            "real_adj_dhu": float(np.abs(np.diff(r, axis=0)).mean()) if len(r) > 1 else float("nan"),
            "cv": soft_tissue_cv(g), "real_cv": soft_tissue_cv(r)}


def slice_bmmd2(real: list, gen: list) -> float:
    """bMMD² (ctstudio.metrics.mmd, linear kernel, [-1, 1] of the 12-bit range) between the generated slices
    and the real slices at the same positions, batches of 4, seeded; NaN if the metrics package is absent."""
    try:
        from ctstudio.metrics.mmd import bmmd2
    except ImportError:
        return float("nan")
    return float(bmmd2(real, gen, batch_size=4, n_batches=20, seed=0)["bmmd2"])


def run_sampler(model, sde, meta, vol, seeds, n, sampler, steps, opts, rng_seeds=(0,), grid=None):
    """Quality and cost of one sampler configuration: mean over ``rng_seeds`` and, as ``KEY_sd``, its SD."""
    runs = [_run_sampler(model, sde, meta, vol, seeds, n, sampler, steps, opts, r, grid) for r in rng_seeds]
    out = {}
    for k in runs[0]:
        vals = np.array([r[k] for r in runs], float)
        out[k] = float(np.nanmean(vals))
        out[k + "_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")
    return out


def _run_sampler(model, sde, meta, vol, seeds, n, sampler, steps, opts, rng_seed=0, grid=None):
    from ctstudio.diffusion import samplers
    from ctstudio.diffusion.ascii import ASCIIRequest, generate_volume

    calls = {"n": 0}
    orig = model.forward

    def counting(*a, **k):
        calls["n"] += 1
        return orig(*a, **k)

    model.forward = counting
    old_grid = samplers.GRIDS[sampler]
    samplers.GRIDS[sampler] = grid or old_grid
    gens, reals, secs = [], [], 0.0
    try:
        for s in seeds:
            t = time.perf_counter()
            v = generate_volume(model, sde, meta, ASCIIRequest(n_slices=n, seed_volume=vol, seed_slice=s,
                                                               sampler=sampler, steps=steps, seed=rng_seed,
                                                               options=opts))
            secs += time.perf_counter() - t
            gens.append(v.array)
            reals.append(vol.array[s - n:s])
    finally:
        model.forward = orig
        samplers.GRIDS[sampler] = old_grid
    q = [quality(g, r) for g, r in zip(gens, reals)]
    out = {k: float(np.nanmean([d[k] for d in q])) for k in q[0]}
    out["bmmd2"] = slice_bmmd2([s for r in reals for s in r], [s for g in gens for s in g])
    total = n * len(seeds)
    out.update(calls_per_slice=calls["n"] / total, s_per_slice=secs / total)
    return out


def train_speed(steps: int = 15) -> list[tuple[str, float]]:
    """steps/s: the trainer (EMA, events) vs a plain fp32 eager loop, and bf16 / channels_last variants."""
    from ctstudio.diffusion.losses import dsm_loss
    from ctstudio.training.recipe_score import ScoreRecipe, ScoreTrainConfig
    from ctstudio.training.trainer import AutocastNet, Trainer

    cfg = ScoreTrainConfig.demo()
    sample = ROOT / "resources" / "sample" / "headsq_hu.nii.gz"
    rows = []

    def plain(bf16=False, cl=False):
        torch.manual_seed(0)
        r = ScoreRecipe(cfg, sample)
        m = r.model
        m.channels_last = cl
        if cl:
            m.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(m.parameters(), lr=cfg.lr)
        it = r.make_batches(None, np.random.default_rng(0))
        for i in range(steps + 2):
            if i == 2:
                t = time.perf_counter()
            x = next(it)
            net = AutocastNet(m, "cpu", torch.bfloat16) if bf16 else m  # the trainer's --autocast bf16
            loss = dsm_loss(net, x, r.sde, cond_prob=cfg.cond_prob, t_sampling=cfg.t_sampling, p_mean=cfg.p_mean,
                            p_std=cfg.p_std, cond_noise=cfg.cond_noise)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return steps / (time.perf_counter() - t)

    rows.append(("plain fp32 eager loop", plain()))
    torch.manual_seed(0)
    r = ScoreRecipe(cfg, sample)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(r, out_dir=d, max_steps=steps + 2, checkpoint_every=0, seed=0, data_dir=sample)
        times = []
        tr.callback = lambda ev: times.append((ev["done"], time.perf_counter())) if ev["stage"] == "step" else None
        tr.log_every = 1
        tr.run()
        (s0, t0), (s1, t1) = times[1], times[-1]
        rows.append(("ctstudio trainer (EMA, events)", (s1 - s0) / (t1 - t0)))
    rows.append(("plain loop, channels_last", plain(cl=True)))
    rows.append(("plain loop, bf16 autocast", plain(bf16=True)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pc-steps", type=int, default=1000)
    ap.add_argument("--fast-steps", type=int, default=25)
    ap.add_argument("--dpm-steps", default="10,12", help="DPM-Solver++(2M) step counts (= network calls)")
    ap.add_argument("--dpm-grids", default="karras", help="grids for DPM-Solver++: karras, geometric or both")
    ap.add_argument("--rng-seeds", default="0,1,2", help="sampler seeds (run-to-run spread)")
    ap.add_argument("--pc-slices", type=int, default=None, help="slices for the PC rows (default --slices; 0: skip)")
    ap.add_argument("--no-inpainting", action="store_true", help="skip the paper's inpainting rows")
    ap.add_argument("--slices", type=int, default=3)
    ap.add_argument("--seeds", default="20,60")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--model", default=None, help="score model name or path (default: the bundled demo)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from ctstudio.diffusion.loading import load_score_model
    from ctstudio.diffusion.samplers import CONDITIONAL_OPTIONS, DEFAULT_OPTIONS, DEFAULT_STEPS, default_sampler
    from ctstudio.io import read_volume

    model, sde, meta = load_score_model(*([args.model] if args.model else []))
    vol = read_volume(ROOT / "resources" / "sample" / "headsq_hu.nii.gz")
    seeds = [int(s) for s in args.seeds.split(",")]
    rng_seeds = [int(s) for s in args.rng_seeds.split(",")]
    pc_slices = args.slices if args.pc_slices is None else args.pc_slices
    dpm_steps = [int(s) for s in args.dpm_steps.split(",") if s]
    grids = ["karras", "geometric"] if args.dpm_grids == "both" else [args.dpm_grids]
    # (label, sampler, steps, options, slices, grid)
    configs = []
    cond = "clean" if meta.get("conditional") else "noised"
    prior = "clean prior" if cond == "clean" else "inpainting"
    opts_of = CONDITIONAL_OPTIONS if cond == "clean" else DEFAULT_OPTIONS
    if pc_slices:
        configs.append((f"PC {args.pc_steps} steps, {prior}", "pc", args.pc_steps,
                        {**opts_of["pc"], "condition": cond}, pc_slices, None))
    configs.append((f"Heun {args.fast_steps}, {prior}", "heun", args.fast_steps,
                    {**opts_of["heun"], "condition": cond}, args.slices, None))
    for st in dpm_steps:
        for grid in grids:
            configs.append((f"DPM-Solver++(2M) {st}, {grid}, {prior}", "dpmpp_2m", st,
                            {**opts_of["dpmpp_2m"], "condition": cond}, args.slices, grid))
    if cond == "clean" and not args.no_inpainting:  # the paper's inpainting on the same model
        noised = {"condition": "noised"}
        configs += [(f"Heun {args.fast_steps}+churn+2 corr. s<=1, inpainting", "heun", args.fast_steps,
                     {**DEFAULT_OPTIONS["heun"], **noised}, args.slices, None)]
        configs += [(f"DPM-Solver++(2M) {st}, inpainting, ODE", "dpmpp_2m", st,
                     {"clip_denoised": True, **noised}, args.slices, None) for st in dpm_steps[-1:]]
        configs += [(f"DPM-Solver++(2M) {st} + 2 corr. s<=1, inpainting", "dpmpp_2m", st,
                     {**DEFAULT_OPTIONS["dpmpp_2m"], **noised}, args.slices, None) for st in dpm_steps[-1:]]
    res = []
    for label, name, steps, opts, n, grid in configs:
        r = run_sampler(model, sde, meta, vol, seeds, n, name, steps, dict(opts),
                        rng_seeds if name != "pc" else rng_seeds[:1], grid)
        res.append((label, r))
        print(f"  measured {label}: {r}", flush=True)
    base = res[0][1]
    print(f"\nASCII demo model {meta['name']}, {args.slices} slices after seed slices {seeds}, sampler seeds "
          f"{rng_seeds} (PC: {pc_slices} slices, seed {rng_seeds[0]}), {args.threads} thread(s), "
          f"load {os.getloadavg()[0]:.1f}; +- is the SD over the sampler seeds; default: "
          f"{default_sampler(cond)} {DEFAULT_STEPS[default_sampler(cond)]}")
    print(f"{'sampler':<46}{'calls/slice':>12}{'calls ratio':>12}{'s/slice':>9}{'MAE HU':>14}{'bMMD2':>16}"
          f"{'adj|dHU|':>14}{'CV':>7}")

    def pm(r, k, f):
        sd = r.get(k + "_sd", float("nan"))
        return f"{r[k]:{f}}" + (f" +-{sd:{f}}" if np.isfinite(sd) else "      ")

    for label, r in res:
        print(f"{label:<46}{r['calls_per_slice']:>12.0f}{base['calls_per_slice'] / r['calls_per_slice']:>11.1f}x"
              f"{r['s_per_slice']:>9.2f}{pm(r, 'mae_hu', '5.1f'):>14}{pm(r, 'bmmd2', '6.2f'):>16}"
              f"{pm(r, 'adj_dhu', '5.1f'):>14}{r['cv']:>7.3f}")
    print(f"{'real slices (reference)':<46}{'':>12}{'':>12}{'':>9}{0.0:>14.1f}{0.0:>16.2f}"
          f"{base['real_adj_dhu']:>14.1f}{base['real_cv']:>7.3f}")
    if not args.skip_train:
        rows = train_speed()
        ref = rows[0][1]
        print(f"\n{'training step (demo config, batch 8)':<52}{'steps/s':>9}{'vs plain fp32':>15}")
        for label, sps in rows:
            print(f"{label:<52}{sps:>9.2f}{sps / ref:>14.2f}x")


if __name__ == "__main__":
    main()
