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
    "the input and of the output against REF (the same PSNR/SSIM as `ctstudio evaluate`: 12-bit range, "
    "Gaussian-window SSIM slice by slice). The output is marked synthetic, with the model in its provenance."
)


def add_arguments(p) -> None:
    from ctstudio.commands._reading import add_reading_options

    add_reading_options(p)
    p.add_argument("input", help="DICOM folder or file, NIfTI, MHA or NRRD")
    p.add_argument("--model", required=True, help="model name (see `ctstudio models list`) or NAME.safetensors path")
    p.add_argument("--target", help="target kernel (ggcl models); default: the other kernel of a 2-kernel model")
    p.add_argument("-o", "--output", required=True, help="output file (.nii.gz, .mha, .nrrd) or DICOM folder")
    p.add_argument("--batch-size", type=int, help="slices (ggcl, default 4) or blocks (cgan, default 8) per batch")
    p.add_argument("--overlap", type=int, default=8, help="cgan: block overlap in voxels (0 = abutting blocks)")
    p.add_argument("--degrade", action="store_true", help="cgan: degrade the input as in training first")
    p.add_argument("--save-degraded", metavar="PATH", help="cgan with --degrade: also write the degraded input")
    p.add_argument("--seed", type=int, default=0, help="seed of --degrade's noise")
    p.add_argument("--reference", metavar="REF", help="a volume to compare input and output with (PSNR/SSIM)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from ctstudio.commands._drive import drive
    from ctstudio.commands._reading import reading_options
    from ctstudio.pipelines.outputs import check_output
    from ctstudio.errors import InputError
    from ctstudio.io import read_volume, write_volume
    from ctstudio.pipelines.convert import ConvertRequest, convert

    if args.save_degraded and not args.degrade:
        raise InputError("--save-degraded needs --degrade")
    check_output(args.output, [args.input, args.reference], args.overwrite)
    if args.save_degraded:
        check_output(args.save_degraded, [args.input, args.reference, args.output], args.overwrite)
    vol = read_volume(args.input, **reading_options(args))
    ref = read_volume(args.reference, **reading_options(args)) if args.reference else None
    req = ConvertRequest(volume=vol, model=args.model, target=args.target, batch_size=args.batch_size,
                         overlap=args.overlap, degrade=args.degrade, seed=args.seed, reference=ref,
                         device=args.device)
    res = drive(convert(req), args.quiet, "converting")
    if args.save_degraded:
        write_volume(res.input, args.save_degraded, overwrite=args.overwrite)
    path = write_volume(res.volume, args.output, synthetic=True, overwrite=args.overwrite)
    print(f"{res.description}: wrote {path}")
    if res.scores is not None:
        for label, sc in (("input", res.scores["input"]), ("output", res.scores["output"])):
            print(f"{label:>6} vs reference: PSNR {sc['psnr_db']:.2f} dB  SSIM {sc['ssim']:.4f}")
    return 0
