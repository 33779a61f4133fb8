"""Which torch device a job runs on: one resolver for the command line and the window."""

from __future__ import annotations

from ctstudio.errors import InputError


def available_devices() -> list[str]:
    """The devices present, best first: each CUDA device, then MPS, then the CPU (``"auto"`` not included)."""
    import torch

    out = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    out.append("cpu")
    return out


def resolve_device(name: str | None = "auto") -> str:
    """``"auto"`` (or ``None``) -> CUDA, then MPS, then CPU; an explicit name is checked against what is present."""
    present = available_devices()
    if name in (None, "", "auto"):
        return "cuda" if present[0].startswith("cuda") else present[0]
    name = str(name).strip().lower()
    if name == "cuda" and any(d.startswith("cuda") for d in present):
        return name
    if name in present:
        return name
    raise InputError(f"device {name!r} is not available on this machine",
                     hint=f"choose one of: auto, {', '.join(present)}")
