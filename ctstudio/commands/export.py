"""``ctstudio export IN OUT``: convert a volume to NIfTI or a DICOM series (optionally marked synthetic)."""

from __future__ import annotations

NAME = "export"
HELP = "write a volume as NIfTI (.nii.gz) or a DICOM series folder"
DESCRIPTION = (
    "Read IN (DICOM folder or file, NIfTI, MHA, NRRD) and write OUT. The format follows OUT's "
    "extension (.nii.gz, .nii, .mha, .nrrd; a name without one is a DICOM series folder) unless "
    "--format is given. DICOM output never carries patient identifiers; a volume produced by a "
    "model (or --synthetic) is marked DERIVED\\SECONDARY, Synthetic Data = YES."
)


def add_arguments(p) -> None:
    from ctstudio.commands._reading import add_reading_options

    add_reading_options(p)
    p.add_argument("input", help="DICOM folder or file, NIfTI, MHA or NRRD")
    p.add_argument("output", help="output file (.nii.gz, .mha, .nrrd) or folder (DICOM series)")
    p.add_argument("--format", choices=["nifti", "dicom", "mha", "nrrd"], help="output format (default: from OUT)")
    p.add_argument("--synthetic", action="store_true",
                   help="mark the output as synthetic (model-generated) even if the input is not")
    p.add_argument("--model", help="model name recorded in a synthetic DICOM's Contributing Equipment")
    p.add_argument("--model-version", help="model version recorded with --model")
    p.add_argument("--clip-12bit", action="store_true", help="clip to [-1024, 3071] HU first (recorded in provenance)")
    p.add_argument("--series", metavar="UID", help="SeriesInstanceUID, when IN holds several series")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def run(args) -> int:
    import dataclasses

    from ctstudio.commands._reading import reading_options
    from ctstudio.io import read_volume, write_volume
    from ctstudio.pipelines.outputs import check_output

    check_output(args.output, [args.input], args.overwrite)
    opts = {}
    if args.series:
        opts["series_uid"] = args.series
    opts.update(reading_options(args))
    vol = read_volume(args.input, **opts)
    if args.clip_12bit:
        vol = vol.clip_to_12bit()
    if args.model or args.synthetic:
        prov = vol.provenance
        vol = vol.replace(provenance=dataclasses.replace(
            prov, model=args.model or prov.model or "unspecified model",
            model_version=args.model_version or prov.model_version))
    out = write_volume(vol, args.output, format=args.format, overwrite=args.overwrite,
                       **({"synthetic": True} if args.synthetic else {}))
    z, y, x = vol.shape
    print(f"wrote {out} ({z} x {y} x {x}, {'synthetic' if vol.provenance.synthetic or args.synthetic else 'not synthetic'})")
    return 0
