"""``ctstudio generate``: 3D CT slice by slice with an ASCII score model (+ IC-Net)."""

from __future__ import annotations

NAME = "generate"
HELP = "generate a CT volume slice by slice (ASCII score model, IC-Net calibration)"
DESCRIPTION = (
    "Generate N slices with an ASCII(K) score model, going in the inferior direction (towards the feet). "
    "With --seed-volume, the volume continues that CT below --seed-slice (slice I and the K-2 above it are "
    "the seed; in the bundled sample, slice 0 is the most inferior, so slices I-1, I-2, ... are generated). "
    "Without it, generation starts from an all-air slice. The output holds only the generated slices, "
    "placed where they belong in the seed volume's patient space."
)


def add_arguments(p) -> None:
    from ctstudio.commands._reading import add_reading_options

    add_reading_options(p)
    p.add_argument("--model", default=None, help="score model name or path (default: the bundled demo)")
    p.add_argument("--slices", type=int, required=True, help="number of slices to generate")
    p.add_argument("--seed-volume", help="a CT volume to continue (NIfTI/MHA/NRRD/DICOM)")
    p.add_argument("--seed-slice", type=int, help="continue after this slice index (default: the last)")
    p.add_argument("--k", type=int, help="slices per window; must match the model (checked)")
    p.add_argument("--sampler", choices=["dpmpp_2m", "heun", "pc"], default=None,
                   help="dpmpp_2m: DPM-Solver++(2M), 12 network calls (the default with clean prior slices); heun: "
                        "Karras/Heun with Langevin corrections (the default for the paper's noised inpainting); "
                        "pc: the paper's predictor-corrector (1000 steps, 2000 calls)")
    p.add_argument("--steps", type=int, help="sampler steps (default: dpmpp_2m 12, heun 25, pc 1000)")
    p.add_argument("--condition", choices=["clean", "noised"],
                   help="how the prior slices enter: clean (a conditional model, the default where the model "
                        "was trained for it) or noised (the paper's inpainting: re-imposed at each noise level)")
    p.add_argument("--churn", type=float, help="Heun churn (0: the deterministic ODE; default 0 with clean prior slices, 80 when inpainting)")
    p.add_argument("--corrector", type=int, help="Langevin corrector steps per step (default: pc 1; heun 0 with clean prior slices, 2 when inpainting)")
    p.add_argument("--corrector-smax", type=float,
                   help="heun, dpmpp_2m: Langevin corrections only at noise levels <= this (inpainting default 1.0; 'inf': every level)")
    p.add_argument("--snr", type=float, help="corrector signal-to-noise ratio (default: pc 0.16, heun 0.5)")
    p.add_argument("--icnet", dest="icnet", action="store_true", default=None, help="calibrate each slice with IC-Net")
    p.add_argument("--no-icnet", dest="icnet", action="store_false", help="no IC-Net")
    p.add_argument("--icnet-model", default=None, help="IC-Net name or path (default: the bundled demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same volume)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("-o", "--output", required=True, help="output volume (.nii.gz, .mha, .nrrd, or a DICOM folder)")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    import torch

    from ctstudio.commands._drive import drive
    from ctstudio.commands._reading import reading_options
    from ctstudio.pipelines.outputs import check_output
    from ctstudio.io import read_volume, write_volume
    from ctstudio.pipelines.generate import GenerateRequest, generate

    check_output(args.output, [args.seed_volume], args.overwrite)
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_vol = read_volume(args.seed_volume, **reading_options(args)) if args.seed_volume else None
    req = GenerateRequest(n_slices=args.slices, model=args.model, seed_volume=seed_vol, seed_slice=args.seed_slice,
                          k=args.k, sampler=args.sampler, steps=args.steps, condition=args.condition,
                          churn=args.churn, n_corrector=args.corrector, corrector_smax=args.corrector_smax,
                          snr=args.snr, icnet=args.icnet, icnet_model=args.icnet_model, seed=args.seed,
                          device=args.device)

    def postfix(ev):
        return f"{ev['slice_seconds']:.2f} s/slice, {ev['nfe']} net calls" if ev["stage"] == "slice" else None

    vol = drive(generate(req), args.quiet, "generating", postfix)
    out = write_volume(vol, args.output, synthetic=True, overwrite=args.overwrite)
    p = vol.provenance.parameters
    print(f"wrote {out}: {vol.shape[0]} slices {vol.shape[1]}x{vol.shape[2]}, model {vol.provenance.model}, "
          f"{p['sampler']} {p['steps']} steps ({p['sampler_options'].get('condition')} prior slices), "
          f"seed {p['seed']}, IC-Net {'on' if p['icnet'] else 'off'}, "
          f"{p['seconds'] / max(1, vol.shape[0]):.2f} s/slice")
    return 0
