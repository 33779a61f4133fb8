"""``ctstudio convert IN --model NAME [--target KERNEL] -o OUT``: kernel conversion (GGCL) or 3D cGAN
denoise / depixelate / autoencode of a CT volume."""

from __future__ import annotations

NAME = "convert"
HELP = "convert a CT volume with a model: reconstruction kernel (ggcl) or denoise/depixelate (cgan)"
DESCRIPTION = (
    "Convert a CT volume with a trained model. A 'ggcl' model converts every axial slice to the kernel "
    "--target (one of the model's kernels). A 'cgan' model restores the volume block by block (32³ blocks "
    "with overlap and blending); with --degrade the input is first degraded the way the model was trained "
    "(Poisson noise or 2x pixelation), to demonstrate it on a clean CT. --reference REF prints PSNR/SSIM of "
    "the input and of the output against REF. The output is marked synthetic, with the model in its provenance."
)


def add_arguments(p) -> None:
    p.add_argument("input", help="DICOM folder or file, NIfTI, MHA or NRRD")
    p.add_argument("--model", required=True, help="model name (see `ctstudio models list`) or NAME.safetensors path")
    p.add_argument("--target", help="target kernel (ggcl models); default: the other kernel of a 2-kernel model")
    p.add_argument("-o", "--output", required=True, help="output file (.nii.gz, .mha, .nrrd) or DICOM folder")
    p.add_argument("--batch-size", type=int, default=4, help="slices (ggcl) or blocks (cgan) per batch")
    p.add_argument("--overlap", type=int, default=8, help="cgan: block overlap in voxels (0 = abutting blocks)")
    p.add_argument("--degrade", action="store_true", help="cgan: degrade the input as in training first")
    p.add_argument("--save-degraded", metavar="PATH", help="cgan with --degrade: also write the degraded input")
    p.add_argument("--seed", type=int, default=0, help="seed of --degrade's noise")
    p.add_argument("--reference", metavar="REF", help="a volume to compare input and output with (PSNR/SSIM)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _progress(quiet: bool, unit: str):
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=0, unit=unit, dynamic_ncols=True, leave=False)

    def cb(ev: dict) -> None:
        bar.total = ev["n"]
        bar.n = ev["i"]
        bar.refresh()

    return cb, bar.close


def run(args) -> int:
    import numpy as np

    from ctstudio import checkpoints
    from ctstudio.errors import InputError
    from ctstudio.io import read_volume, write_volume

    meta = checkpoints.read_meta(checkpoints.resolve_model(args.model))
    kind = meta.get("kind")
    vol = read_volume(args.input)
    if kind == "ggcl":
        from ctstudio.translation.kernels import KernelConverter

        conv = KernelConverter.load(args.model, device=args.device)
        target = args.target
        if target is None:
            others = [d for d in conv.domains if d.lower() != (vol.metadata.kernel or "").lower()]
            if len(conv.domains) == 2 and len(others) >= 1:
                target = others[-1]
            else:
                raise InputError(f"choose the target kernel with --target ({', '.join(conv.domains)})")
        cb, close = _progress(args.quiet, "slice")
        try:
            out = conv.convert(vol, target, batch_size=args.batch_size, callback=cb)
        finally:
            close()
        what = f"converted {vol.shape[0]} slices to kernel {target} with {conv.name}"
    elif kind == "cgan":
        from ctstudio.translation.cgan import CGANModel, degrade

        model = CGANModel.load(args.model, device=args.device)
        if args.degrade:
            deg = degrade(vol.array.astype(np.float32), model.degradation, np.random.default_rng(args.seed))
            deg = np.clip(np.rint(deg), -32768, 32767)
            vol = vol.with_array(deg.astype(np.int16),
                                 step=f"simulated {model.task} degradation {model.degradation.to_dict()}, seed {args.seed}")
            if args.save_degraded:
                write_volume(vol, args.save_degraded)
        elif args.save_degraded:
            raise InputError("--save-degraded needs --degrade")
        cb, close = _progress(args.quiet, "block")
        try:
            out = model.apply(vol, overlap=args.overlap, batch_size=args.batch_size, callback=cb)
        finally:
            close()
        what = f"{model.task} with {model.name} ({model.block}³ blocks, overlap {args.overlap})"
    else:
        raise InputError(f"{args.model} is a {kind!r} model; `ctstudio convert` takes ggcl or cgan models",
                         hint="`ctstudio models list` shows each model's kind")
    path = write_volume(out, args.output)
    print(f"{what}: wrote {path}")
    if args.reference:
        from ctstudio.translation.cgan import psnr, ssim

        ref = read_volume(args.reference)
        if ref.shape != out.shape:
            raise InputError(f"the reference has shape {ref.shape}, the output {out.shape}", path=args.reference)
        r = ref.array.astype(np.float32)
        for label, v in (("input", vol.array), ("output", out.array)):
            print(f"{label:>6} vs reference: PSNR {psnr(v, r):.2f} dB  SSIM {ssim(v, r):.4f}")
    return 0
