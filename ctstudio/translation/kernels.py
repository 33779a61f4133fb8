"""Reconstruction-kernel conversion of a volume with a trained GGCL / StarGAN generator.

Slice by slice (axial), in batches, HU [-1024, 3071] -> [-1, 1] -> generator (target kernel one-hot)
-> HU. Progress goes to ``callback`` as events of the one schema (:mod:`ctstudio.jobs`: job ``"kernels"``,
stage ``"slice"``, ``done`` of ``total`` slices); ``cancel`` (a :class:`~ctstudio.jobs.CancelToken`) is
checked between batches. The result is a :class:`Volume` in HU
whose provenance names the model, its version and the target kernel.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ctstudio.errors import InputError
from ctstudio.imaging.intensity import FULL_12BIT, HURange, hu_to_model, model_to_hu
from ctstudio.jobs import Progress, check_cancel, run_job
from ctstudio.volume import Volume


class KernelConverter:
    """A loaded generator plus what it needs: the domain (kernel) names and the HU range."""

    def __init__(self, generator, domains: list[str], hu_range: HURange = FULL_12BIT, name: str = "",
                 version: str = "", device: str = "cpu"):
        self.G = generator.eval()
        self.domains = list(domains)
        self.hu_range = hu_range
        self.name = name
        self.version = version
        self.device = device
        self.meta: dict = {}

    @classmethod
    def load(cls, name_or_path, device: str = "cpu") -> "KernelConverter":
        from ctstudio import checkpoints
        from ctstudio.models.stargan import StarGenerator

        meta, tensors = checkpoints.load_model(name_or_path, kind="ggcl")
        with checkpoints.config_fields(meta, "GGCL model") as cfg:
            domains = [str(d) for d in cfg["domains"]]
            G = StarGenerator(len(domains), conv_dim=int(cfg["g_conv_dim"]), n_res=int(cfg["g_repeat"]),
                              residual=bool(cfg.get("residual", False)))
            rng = HURange.from_dict(cfg.get("hu_range", FULL_12BIT.to_dict()))
        checkpoints.load_modules(meta, tensors, {"G": G}, device)
        version = str(meta.get("card", {}).get("version", meta.get("version", "")))
        conv = cls(G, domains, rng, meta["name"], version, device)
        conv.meta = meta
        return conv

    def domain_index(self, target: str) -> int:
        for i, d in enumerate(self.domains):
            if d.lower() == str(target).lower():
                return i
        raise InputError(f"the model {self.name or ''} does not know the kernel {target!r}",
                         hint=f"its kernels are: {', '.join(self.domains)}")

    def convert_slices(self, hu: np.ndarray, target: str) -> np.ndarray:
        """HU slices (B, H, W) -> converted HU slices (float). Pads H, W to multiples of 4 by reflection."""
        import torch

        t = self.domain_index(target)
        b, h, w = hu.shape
        ph, pw = (-h) % 4, (-w) % 4
        x = hu_to_model(np.asarray(hu, np.float32), self.hu_range)
        if ph or pw:
            x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(h, w) > 4 else "edge")
        xt = torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1).to(self.device)
        c = torch.zeros(b, len(self.domains), device=self.device)
        c[:, t] = 1.0
        with torch.inference_mode():
            y, _ = self.G(xt, c)
        y = y[:, 0, :h, :w].float().cpu().numpy()
        return model_to_hu(y, self.hu_range)

    def convert(self, volume: Volume, target: str, batch_size: int = 4, callback=None, cancel=None) -> Volume:
        """Convert every axial slice of ``volume`` to kernel ``target``; returns a new Volume in HU."""
        return run_job(self.iter_convert(volume, target, batch_size, cancel), callback)

    def iter_convert(self, volume: Volume, target: str, batch_size: int = 4, cancel=None):
        """:meth:`convert` as a job: yields an event per batch (payload ``first``: its first slice index)."""
        self.domain_index(target)
        if batch_size < 1:
            raise InputError(f"the batch size must be at least 1, not {batch_size}")
        n = volume.shape[0]
        out = np.empty(volume.shape, dtype=np.float32)
        progress = Progress("kernels", n, "slice")
        for s in range(0, n, batch_size):
            check_cancel(cancel, f"kernel conversion cancelled after {s} of {n} slices")
            out[s:s + batch_size] = self.convert_slices(volume.array[s:s + batch_size], target)
            yield progress.event("slice", min(s + batch_size, n), first=s)
        prov = dataclasses.replace(volume.provenance, model=self.name or "ggcl", model_version=self.version,
                                   parameters={"task": "kernel-conversion", "target_kernel": target,
                                               "source_kernel": volume.metadata.kernel,
                                               "hu_range": self.hu_range.to_dict()})
        prov = prov.with_step(f"kernel conversion to {target} ({self.name or 'ggcl'})")
        md = dataclasses.replace(volume.metadata, kernel=str(target),
                                 series_description=f"synthetic {target} (converted by {self.name or 'ggcl'})")
        return Volume.from_hu(np.clip(out, self.hu_range.lower, self.hu_range.upper), spacing=volume.spacing,
                              origin=volume.origin, direction=volume.direction, metadata=md, provenance=prov)


def convert_volume(volume: Volume, model, target: str, batch_size: int = 4, callback=None, cancel=None,
                   device: str = "cpu") -> Volume:
    """Convert ``volume`` to kernel ``target`` with ``model`` (a :class:`KernelConverter`, a name or a path)."""
    conv = model if isinstance(model, KernelConverter) else KernelConverter.load(model, device=device)
    return conv.convert(volume, target, batch_size=batch_size, callback=callback, cancel=cancel)
