"""The demo study's synthetic cases, made by the bundled score model (``ctstudio study demo``).

The studies core builds the demo (:func:`ctstudio.studies.demo.make_demo`) and runs no model; this module, a
layer above, makes each synthetic case with the generate pipeline and is handed to it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from ctstudio.errors import InputError
from ctstudio.volume import Volume


def models_available() -> bool:
    """True where torch can run the demo model (not in a reader-only build); torch is not imported."""
    return importlib.util.find_spec("torch") is not None


def generated_case(vol: Volume, z0: int, n: int, seed: int, on_event: Callable[[dict], Any] | None = None,
                   cancel=None) -> Volume:
    """``n`` slices made by the bundled score model, continuing towards the feet from the real slice just above
    index ``z0`` of ``vol`` (so they cover slices z0 .. z0 + n - 1 of it), default sampler, fixed seed, CPU."""
    import torch

    from ctstudio.imaging.slices import inferior_step
    from ctstudio.jobs import run_job
    from ctstudio.pipelines.generate import GenerateRequest, generate

    step = inferior_step(vol)
    seed_slice = z0 + n if step < 0 else z0 - 1  # the real slice just superior to the crop
    if not 0 <= seed_slice < vol.shape[0]:
        raise InputError(f"the demo crop at slice {z0} has no real slice above it to start from")
    req = GenerateRequest(n_slices=n, seed_volume=vol, seed_slice=seed_slice, seed=seed, device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64x64 network: one thread is fastest, and it does not fight other work
    try:
        return run_job(generate(req, cancel=cancel), on_event)
    finally:
        torch.set_num_threads(threads)
