"""The convert job: reconstruction-kernel conversion (GGCL) or 3D cGAN restoration of a volume.

:func:`convert` takes one :class:`ConvertRequest` (the volume, the model, a target kernel or the cGAN's
options, an optional reference), yields events of the :mod:`ctstudio.jobs` schema (``slice`` events for a
kernel model, ``block`` events for a cGAN) and returns a :class:`ConvertResult`: the converted volume with
provenance, the input it saw (degraded first where asked), and PSNR/SSIM against the reference when given
(the one implementation in :mod:`ctstudio.metrics.ssim`, so ``convert --reference`` and ``evaluate`` agree).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from ctstudio.errors import InputError
from ctstudio.jobs import Progress, check_cancel
from ctstudio.pipelines.models import load_model
from ctstudio.volume import Volume

#: the model kinds ``convert`` runs
CONVERT_KINDS = ("ggcl", "cgan")


@dataclass(frozen=True)
class ConvertRequest:
    volume: Volume = field(compare=False)
    model: str
    target: str | None = None  # ggcl: the target kernel; None: the other kernel of a two-kernel model
    batch_size: int | None = None  # slices (ggcl, default 4) or blocks (cgan, default 8) per batch
    overlap: int = 8  # cgan: block overlap in voxels
    degrade: bool = False  # cgan: degrade the input as in training first (to demonstrate on a clean CT)
    seed: int = 0  # the degradation's noise
    reference: Volume | None = field(default=None, compare=False)
    device: str | None = "auto"


@dataclass(frozen=True)
class ConvertResult:
    volume: Volume  # the converted volume (synthetic, with provenance)
    input: Volume  # what the model was given (the degraded input with degrade=True)
    description: str  # one line for a person
    kind: str
    target: str | None = None
    scores: dict | None = None  # with a reference: {"input": {...}, "output": {...}}


def choose_target(domains: list[str], source_kernel: str | None, target: str | None) -> str:
    """The target kernel: ``target`` if given, else the other kernel of a two-kernel model."""
    if target:
        return target
    others = [d for d in domains if d.lower() != (source_kernel or "").lower()]
    if len(domains) == 2 and others:
        return others[-1]
    raise InputError(f"choose the target kernel (--target): one of {', '.join(domains)}")


def reference_scores(reference: Volume, volume: Volume) -> dict:
    """PSNR (dB) and SSIM of ``volume`` against ``reference``, over the volume and per axial slice."""
    from ctstudio.metrics.ssim import psnr, psnr_ssim_per_slice, ssim

    if reference.shape != volume.shape:
        raise InputError(f"the reference has shape {reference.shape}, the volume {volume.shape}",
                         hint="the reference must be the same scan on the same grid")
    r, v = reference.array, volume.array
    per_slice = psnr_ssim_per_slice(r, v)
    return {"psnr_db": psnr(r, v), "ssim": ssim(r, v), "psnr_db_per_slice": per_slice["psnr_db"],
            "ssim_per_slice": per_slice["ssim"]}


def convert(req: ConvertRequest, cancel=None) -> Generator[dict, None, ConvertResult]:
    progress = Progress("convert", None, "slice")
    yield progress.event("load", 0, model=req.model)
    loaded = load_model(req.model, kind=CONVERT_KINDS, device=req.device, purpose="conversion (`ctstudio convert`)")
    vol = req.volume
    if req.reference is not None and req.reference.shape != vol.shape:
        raise InputError(f"the reference has shape {req.reference.shape}, the input {vol.shape}",
                         hint="the reference must be the same scan on the same grid")
    check_cancel(cancel, "conversion cancelled before it started")
    if loaded.kind == "ggcl":
        conv = loaded.runner
        target = choose_target(conv.domains, vol.metadata.kernel, req.target)
        conv.domain_index(target)
        if req.degrade:
            raise InputError("degrade applies to cGAN models only")
        yield progress.event("start", 0, kind="ggcl", target=target, source_kernel=vol.metadata.kernel,
                             domains=list(conv.domains), device=loaded.device)
        out = yield from _relay(conv.iter_convert(vol, target, req.batch_size or 4, cancel), "convert")
        what = f"converted {vol.shape[0]} slices to kernel {target} with {conv.name}"
    else:
        model = loaded.runner
        target = None
        if req.degrade:
            from ctstudio.translation.cgan import degrade

            deg = degrade(vol.array.astype(np.float32), model.degradation, np.random.default_rng(req.seed))
            vol = vol.with_array(np.clip(np.rint(deg), -32768, 32767).astype(np.int16),
                                 step=f"simulated {model.task} degradation {model.degradation.to_dict()}, "
                                      f"seed {req.seed}")
        yield progress.event("start", 0, kind="cgan", task=model.task, block=model.block, overlap=req.overlap,
                             device=loaded.device)
        out = yield from _relay(model.iter_apply(vol, req.overlap, req.batch_size or 8, cancel), "convert")
        what = f"{model.task} with {model.name} ({model.block}³ blocks, overlap {req.overlap})"
    scores = None
    if req.reference is not None:
        yield progress.event("scoring", 0)
        scores = {"input": reference_scores(req.reference, vol), "output": reference_scores(req.reference, out)}
    yield progress.event("done", 0, description=what)
    return ConvertResult(out, vol, what, loaded.kind, target, scores)


def _relay(job, name: str):
    """Re-label a core job's events as this pipeline's (same schema; the unit and counts are the core's)."""
    while True:
        try:
            ev = next(job)
        except StopIteration as stop:
            return stop.value
        yield {**ev, "job": name}
