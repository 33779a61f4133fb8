"""The generate job: ASCII slice-by-slice generation with a score model and (optionally) IC-Net.

:func:`generate` takes one :class:`GenerateRequest`, yields events of the :mod:`ctstudio.jobs` schema
(``start`` with the notes a user should read before the run, then one ``slice`` per finished slice carrying
the slice in HU, ``target_index`` (where it belongs in the seed volume's index: below 0 or past the end, the
volume grows) and ``state``) and returns the generated slices as a :class:`~ctstudio.volume.Volume` with
provenance, placed in the seed volume's patient space. A run that stopped (cancelled, or an error) continues
exactly where it stopped with ``resume=`` the last slice event's ``state``: the slices are the same as those of
an uninterrupted run with the same seed.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

from ctstudio.errors import InputError, ModelError
from ctstudio.jobs import Progress, check_cancel
from ctstudio.pipelines.models import DEFAULTS, load_model
from ctstudio.volume import Volume


@dataclass(frozen=True)
class GenerateRequest:
    n_slices: int
    model: str | None = None  # score model name or path; None: the bundled demo
    seed_volume: Volume | None = field(default=None, compare=False)
    seed_slice: int | None = None  # continue below this slice (None: the last); needs seed_volume
    k: int | None = None  # if given, must match the model
    sampler: str | None = None  # None: the default for the condition mode (dpmpp_2m with clean prior slices)
    steps: int | None = None
    condition: str | None = None  # "clean" / "noised"; None: the model's best
    churn: float | None = None
    n_corrector: int | None = None
    corrector_smax: float | None = None
    snr: float | None = None
    icnet: bool | None = None  # None: calibrate with the default IC-Net when there is one; True: must
    icnet_model: str | None = None
    seed: int = 0
    device: str | None = "auto"
    resume: object | None = field(default=None, compare=False)  # a slice event's "state": continue that run


def grid_note(seed_volume: Volume | None, size: int) -> str | None:
    """What happens to the seed slices when their grid differs from the model's (None when it does not)."""
    if seed_volume is None:
        return None
    h, w = seed_volume.shape[1:]
    if (h, w) == (size, size):
        return None
    return (f"the seed slices are resampled {w}x{h} -> {size}x{size}; the output has the model's grid "
            f"({size}x{size})")


def generate(req: GenerateRequest, cancel=None) -> Generator[dict, None, Volume]:
    from ctstudio.diffusion.ascii import ASCIIRequest, ascii_slices, assemble_volume, target_index

    if req.seed_slice is not None and req.seed_volume is None:
        raise InputError("a seed slice needs a seed volume (--seed-volume)")
    progress = Progress("generate", req.n_slices, "slice")
    yield progress.event("load", 0, model=req.model or DEFAULTS["score"])
    score = load_model(req.model or DEFAULTS["score"], kind="score", device=req.device)
    meta = score.runner.meta
    if req.k is not None and req.k != meta["k"]:
        raise InputError(f"--k {req.k} does not match the model {meta['name']!r}, which is K={meta['k']}",
                         hint=f"leave out --k, or choose a K={req.k} model")
    notes = []
    calibrator = None
    if req.icnet is not False:
        try:
            calibrator = load_model(req.icnet_model or DEFAULTS["icnet"], kind="icnet", device=score.device).runner
        except ModelError:
            if req.icnet or req.icnet_model:  # asked for explicitly
                raise
            notes.append("no IC-Net model found; generating without calibration")
    note = grid_note(req.seed_volume, meta["image_size"])
    if note:
        notes.append(note)
    check_cancel(cancel, "generation cancelled before the first slice")
    options = {"corrector_smax": req.corrector_smax} if req.corrector_smax is not None and req.sampler != "pc" \
        else {}
    areq = ASCIIRequest(n_slices=req.n_slices, seed_volume=req.seed_volume, seed_slice=req.seed_slice,
                        sampler=req.sampler, steps=req.steps, seed=req.seed, churn=req.churn, snr=req.snr,
                        n_corrector=req.n_corrector, condition=req.condition, calibrator=calibrator, options=options,
                        resume=req.resume)
    yield progress.event("start", 0, model=meta["name"], device=score.device, notes=notes,
                         image_size=meta["image_size"], k=meta["k"], icnet=getattr(calibrator, "name", None))
    slices = ascii_slices(score.runner.model, score.runner.sde, meta, areq, cancel=cancel, device=score.device)
    geometry = None
    while True:
        try:
            ev = next(slices)
        except StopIteration as stop:
            result = stop.value
            break
        if geometry is None:
            geometry = _geometry_of(areq, meta)
        yield progress.event("slice", ev["done"], index=ev["index"], slice_hu=ev["slice_hu"],
                             target_index=target_index(geometry, ev["index"]), slice_seconds=ev["slice_seconds"],
                             nfe=ev["nfe"], state=ev["state"])
    volume = assemble_volume(result, meta, areq)
    yield progress.event("done", req.n_slices, shape=volume.shape)
    return volume


def _geometry_of(areq, meta) -> dict:
    """Where the slices go (the same geometry :func:`ascii_slices` works out; cheap: no pixels resized)."""
    from ctstudio.imaging.slices import inferior_step

    vol = areq.seed_volume
    if vol is None:
        return {}
    i = vol.shape[0] - 1 if areq.seed_slice is None else int(areq.seed_slice)
    return {"seed_index": i, "step": inferior_step(vol)}
