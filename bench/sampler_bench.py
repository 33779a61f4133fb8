"""Sampler benchmark on the bundled demo score model: the paper's PC vs the fast sampler, same seeds.

Prints one table: network calls and seconds per slice, and quality beside them (MAE in HU to the real
slices at the same positions, adjacent-slice mean |dHU| vs the real volume's, soft-tissue CV), plus the
training step's speed vs a plain fp32 eager loop and the bf16 / channels_last variants, all measured in
this run on this machine.

usage: .venv/bin/python bench/sampler_bench.py [--pc-steps 1000] [--fast-steps 25] [--slices 3]
       [--seeds 20,60] [--threads 1]
"""

from __future__ import annotations

import argparse
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


def run_sampler(model, sde, meta, vol, seeds, n, sampler, steps, opts):
    from ctstudio.diffusion.ascii import ASCIIRequest, generate_volume

    calls = {"n": 0}
    orig = model.forward

    def counting(*a, **k):
        calls["n"] += 1
        return orig(*a, **k)

    model.forward = counting
    gens, reals, secs = [], [], 0.0
    try:
        for s in seeds:
            t = time.perf_counter()
            v = generate_volume(model, sde, meta, ASCIIRequest(n_slices=n, seed_volume=vol, seed_slice=s,
                                                               sampler=sampler, steps=steps, seed=0, options=opts))
            secs += time.perf_counter() - t
            gens.append(v.array)
            reals.append(vol.array[s - n:s])
    finally:
        model.forward = orig
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
    ap.add_argument("--slices", type=int, default=3)
    ap.add_argument("--seeds", default="20,60")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--model", default=None, help="score model name or path (default: the bundled demo)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from ctstudio.diffusion.loading import load_score_model
    from ctstudio.diffusion.samplers import CONDITIONAL_OPTIONS, DEFAULT_OPTIONS
    from ctstudio.io import read_volume

    model, sde, meta = load_score_model(*([args.model] if args.model else []))
    vol = read_volume(ROOT / "resources" / "sample" / "headsq_hu.nii.gz")
    seeds = [int(s) for s in args.seeds.split(",")]
    noised = {"condition": "noised"}
    configs = [
        (f"PC (paper), {args.pc_steps} steps, inpainting", "pc", args.pc_steps, {**DEFAULT_OPTIONS["pc"], **noised}),
        (f"Heun ODE {args.fast_steps}, inpainting", "heun", args.fast_steps,
         {"churn": 0.0, "n_corrector": 0, **noised}),
        (f"Heun {args.fast_steps}+churn+2 corr. s<=1, inpainting", "heun", args.fast_steps,
         {**DEFAULT_OPTIONS["heun"], **noised}),
    ]
    if meta.get("conditional"):  # a model trained with clean prior slices as a condition (cond_prob > 0)
        clean = {"condition": "clean"}
        configs += [
            (f"PC {args.pc_steps} steps, clean prior", "pc", args.pc_steps, {**CONDITIONAL_OPTIONS["pc"], **clean}),
            (f"fast default: Heun {args.fast_steps}, clean prior", "heun", args.fast_steps,
             {**CONDITIONAL_OPTIONS["heun"], **clean}),
        ]
    res = []
    for label, name, steps, opts in configs:
        res.append((label, run_sampler(model, sde, meta, vol, seeds, args.slices, name, steps, dict(opts))))
        print(f"  measured {label}", flush=True)
    base = res[0][1]
    print(f"\nASCII demo model {meta['name']}, {args.slices} slices after seed slices {seeds}, seed 0, "
          f"{args.threads} thread(s)")
    print(f"{'sampler':<48}{'net calls/slice':>16}{'calls ratio':>12}{'s/slice':>9}{'speed-up':>9}"
          f"{'MAE HU':>8}{'bMMD2':>9}{'adj|dHU|':>9}{'CV':>7}")
    for label, r in res:
        print(f"{label:<48}{r['calls_per_slice']:>16.0f}{base['calls_per_slice'] / r['calls_per_slice']:>11.1f}x"
              f"{r['s_per_slice']:>9.2f}{base['s_per_slice'] / r['s_per_slice']:>8.1f}x{r['mae_hu']:>8.1f}"
              f"{r['bmmd2']:>9.5f}"
              f"{r['adj_dhu']:>9.1f}{r['cv']:>7.3f}")
    print(f"{'real slices (reference)':<48}{'':>16}{'':>12}{'':>9}{'':>9}{0.0:>8.1f}{0.0:>9.5f}{base['real_adj_dhu']:>9.1f}"
          f"{base['real_cv']:>7.3f}")
    if not args.skip_train:
        rows = train_speed()
        ref = rows[0][1]
        print(f"\n{'training step (demo config, batch 8)':<52}{'steps/s':>9}{'vs plain fp32':>15}")
        for label, sps in rows:
            print(f"{label:<52}{sps:>9.2f}{sps / ref:>14.2f}x")


if __name__ == "__main__":
    main()
